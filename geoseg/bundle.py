"""The model bundle: one ``.safetensors`` file that says everything needed to use the model.

Weights are safetensors tensors; the header's ``__metadata__["geoseg"]`` holds :class:`BundleMeta` as JSON
(architecture, bands and their normalisation, classes and colours, resolution, tile size, provenance).
No pickle, no side files, no code execution on load. Older format versions are upgraded on load; newer
ones are refused with a message that says to upgrade geoseg.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from safetensors import SafetensorError, safe_open

from geoseg.classes import ClassScheme
from geoseg.errors import InputError
from geoseg.outputs import atomic_output

if TYPE_CHECKING:  # torch is imported only where weights are touched: `geoseg info` stays light
    import torch

FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).parent / "models" / "default" / "zion_landcover.safetensors"
METADATA_KEY = "geoseg"


class BandSpec(BaseModel):
    """One input band the model expects, in order, with its normalisation: ``(clip(x) - mean) / std``."""

    name: str
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)
    clip_low: float | None = None
    clip_high: float | None = None


class ModelSpec(BaseModel):
    """What network to build. ``architecture`` is an smp architecture name, ``SimpleFCN`` or ``ContextFCN``.

    ContextFCN reads ``hidden[0]`` as its width and ``encoder_depth`` as its number of context levels.
    """

    architecture: str = "Unet"
    encoder: str | None = "resnet18"
    encoder_depth: int | None = None
    decoder_channels: list[int] | None = None
    #: SimpleFCN only: hidden widths of its 3x3 convolutions (receptive field 2·len+1 px).
    hidden: list[int] | None = None
    #: Structured pruning (geoseg.channels): output channels kept by each pruned convolution, by module name.
    #: Empty for unpruned nets, so bundles written before pruning existed read unchanged.
    pruned: dict[str, int] = Field(default_factory=dict)


class BundleMeta(BaseModel):
    """Everything about a model except its weights."""

    format_version: int = FORMAT_VERSION
    name: str
    description: str = ""
    model: ModelSpec
    bands: list[BandSpec]
    input_dtype: str = "float32"
    input_nodata: float | None = None
    scheme: ClassScheme
    gsd: float | None = Field(default=None, gt=0, description="ground sample distance in metres")
    crs_hint: str | None = None
    tile_size: int = Field(default=256, ge=16)
    overlap: int = Field(default=32, ge=0)
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    geoseg_version: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits(self) -> "BundleMeta":
        if not self.bands:
            raise ValueError("a bundle needs at least one band")
        if self.overlap * 2 > self.tile_size:
            raise ValueError(f"overlap {self.overlap} must be at most half the tile size {self.tile_size}")
        return self

    @property
    def in_channels(self) -> int:
        return len(self.bands)

    @property
    def num_classes(self) -> int:
        return len(self.scheme.classes)

    def class_ids(self) -> np.ndarray:
        """Model output channel ``i`` means class id ``class_ids()[i]``."""
        return np.array([c.id for c in self.scheme.classes], dtype=np.uint8)


# Upgraders turn the metadata dict of version N into version N+1. Keep every one, forever.
_UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _upgrade(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    version = int(raw.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: bundle format {version} is newer than this geoseg reads "
                         f"({FORMAT_VERSION}); upgrade geoseg")
    while version < FORMAT_VERSION:
        if version not in _UPGRADERS:
            raise InputError(f"{path}: bundle format {version} is not supported; re-export the model")
        raw = _UPGRADERS[version](raw)
        version = int(raw["format_version"])
    return raw


class ModelBundle:
    """Metadata plus weights; ``build()`` gives a ready torch module in eval mode."""

    def __init__(self, meta: BundleMeta, state_dict: dict[str, torch.Tensor], path: Path | None = None):
        self.meta = meta
        self.state_dict = state_dict
        self.path = path

    def build(self) -> torch.nn.Module:
        from geoseg.models import build_model

        module = build_model(self.meta)
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            where = self.path or self.meta.name
            raise InputError(f"{where}: weights do not match {self.meta.model.architecture}/"
                             f"{self.meta.model.encoder} ({first}); the file is damaged or mislabelled") from err
        return module.eval()

    def save(self, path: str | os.PathLike, overwrite: bool = False, half: bool = False) -> Path:
        """Write the bundle; ``half`` stores float weights as fp16 (half the size, same predictions)."""
        from safetensors.torch import save_file

        from geoseg import __version__

        meta = self.meta.model_copy(update={"geoseg_version": self.meta.geoseg_version or __version__})
        tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
                   for k, v in self.state_dict.items()}
        with atomic_output(path, overwrite) as tmp:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: meta.model_dump_json()})
        return Path(path)

    @classmethod
    def from_module(cls, meta: BundleMeta, module: torch.nn.Module) -> "ModelBundle":
        return cls(meta, {k: v.detach().cpu() for k, v in module.state_dict().items()})


def read_meta(path: str | os.PathLike) -> BundleMeta:
    """Only the metadata (fast: reads the header, not the weights); ``.onnx`` models carry it too."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found; pass an existing .safetensors bundle")
    if path.suffix.lower() == ".onnx":
        from geoseg.onnxbundle import read_onnx_meta

        return read_onnx_meta(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{path}: not a safetensors model bundle ({err}); pass a geoseg .safetensors file") from err
    if METADATA_KEY not in header:
        raise InputError(f"{path}: safetensors file without geoseg metadata; export it with geoseg")
    return parse_meta(header[METADATA_KEY], path)


def parse_meta(text: str, path: Path) -> BundleMeta:
    """Validate and upgrade metadata JSON from any container (safetensors header, ONNX metadata_props)."""
    try:
        raw = _upgrade(json.loads(text), path)
        return BundleMeta.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as err:
        first = str(err).splitlines()[0] if isinstance(err, json.JSONDecodeError) else _pydantic_summary(err)
        raise InputError(f"{path}: invalid geoseg metadata ({first}); re-export the model") from err


def load_bundle(path: str | os.PathLike) -> ModelBundle:
    """Read and validate a bundle (metadata and weights)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path)
    return ModelBundle(meta, load_file(str(path)), path)


def _pydantic_summary(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "metadata"
    return f"{where}: {first['msg']}"

