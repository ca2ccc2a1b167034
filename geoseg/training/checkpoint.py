"""What a training run leaves behind as it goes: a resumable checkpoint after every epoch, and its logs.

A checkpoint is weights, optimiser moments and RNG states in safetensors, counters and the log in JSON:
nothing is unpickled, so a checkpoint from elsewhere is safe. Shared by the semantic and instance trainers.
"""
from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from geoseg.errors import ConfigError, InputFileError
from geoseg.io.outputs import atomic_output
from geoseg.training.config import TrainConfig


def config_digest(config: TrainConfig) -> str:
    """What a checkpoint must match to be resumed (not the epoch budget, nor the format version: upgraded
    configs are the same run)."""
    excluded = {"format_version": True, "train": {"epochs", "time_limit_minutes"}}
    return hashlib.sha256(config.model_dump_json(exclude=excluded).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------- checkpoint
class Checkpoint:
    """``last.safetensors`` (model, optimiser tensors, RNG) + ``last.json`` (counters, log, param groups)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.weights = folder / "last.safetensors"
        self.state = folder / "last.json"

    def exists(self) -> bool:
        return self.weights.is_file() and self.state.is_file()

    def save(self, module: torch.nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator,
             state: dict[str, Any], rng: np.random.Generator) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        optim_state = optimiser.state_dict()
        for index, slots in optim_state["state"].items():
            for name, value in slots.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.augment"] = generator.get_state()
        pair = uuid.uuid4().hex     # ties the two files of one save: a signal may land between the writes
        payload = {**state, "param_groups": optim_state["param_groups"], "numpy_rng": rng.bit_generator.state,
                   "pair": pair}
        with atomic_output(self.weights, overwrite=True) as tmp:
            save_file(tensors, str(tmp), metadata={"pair": pair})
        with atomic_output(self.state, overwrite=True) as tmp:
            tmp.write_text(json.dumps(payload, indent=1))

    def load(self, module: torch.nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator,
             rng: np.random.Generator, digest: str) -> dict[str, Any]:
        """The saved counters, after restoring the rest; refused before touching the network when the
        checkpoint's config ``digest`` differs (its weights may not even fit, e.g. other input channels)."""
        try:
            tensors = load_file(str(self.weights))
            with safe_open(str(self.weights), "pt") as handle:
                pair = (handle.metadata() or {}).get("pair")
            payload = json.loads(self.state.read_text())
        except (OSError, ValueError) as err:
            raise InputFileError(f"{self.folder}: unreadable checkpoint ({err}); delete it or train without {{resume}}",
                                 parameters=("resume",)) from err
        if pair != payload.pop("pair", None):
            raise InputFileError(f"{self.folder}: the checkpoint's weights and state come from different epochs (the "
                                 "run was stopped while saving); train without {resume} to start over",
                                 parameters=("resume",))
        if payload.get("digest") != digest:
            raise ConfigError(f"{self.folder}: the checkpoint was made with another config; "
                              "delete it or train without {resume}", parameters=("resume",))
        module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value
        optimiser.load_state_dict({"state": slots, "param_groups": payload.pop("param_groups")})
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.augment"])
        rng.bit_generator.state = payload.pop("numpy_rng")
        return payload


def write_logs(folder: Path, rows: list[dict[str, Any]], fields: Sequence[str]) -> None:
    """The epoch log as ``log.csv`` and ``log.json`` in ``folder``, each replaced atomically."""
    with atomic_output(folder / "log.csv", overwrite=True) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields))
            writer.writeheader()
            writer.writerows(rows)
    with atomic_output(folder / "log.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
