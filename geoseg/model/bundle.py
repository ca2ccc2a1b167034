"""The model bundle: one ``.safetensors`` file that says everything needed to use the model.

Weights are safetensors tensors; the header's ``__metadata__["geoseg"]`` holds :class:`~geoseg.model.meta.BundleMeta`
as JSON (architecture, bands and their normalisation, classes and colours, resolution, tile size, provenance).
No pickle, no side files, no code execution on load.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

from geoseg import __version__
from geoseg.errors import ModelError
from geoseg.io.outputs import atomic_output
from geoseg.model.meta import METADATA_KEY, BundleMeta, parse_meta

if TYPE_CHECKING:  # torch is imported only where weights are touched: `geoseg info` stays light
    import torch


class ModelBundle:
    """Metadata plus weights; ``build()`` gives a ready torch module in eval mode."""

    def __init__(self, meta: BundleMeta, state_dict: dict[str, torch.Tensor], path: Path | None = None):
        self.meta = meta
        self.state_dict = state_dict
        self.path = path

    def build(self) -> torch.nn.Module:
        from geoseg.model.networks import build_model  # torch: only when weights are touched

        module = build_model(self.meta)
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            where = self.path or self.meta.name
            raise ModelError(f"{where}: weights do not match {self.meta.model.architecture}/"
                             f"{self.meta.model.encoder} ({first}); the file is damaged or mislabelled") from err
        return module.eval()

    def save(self, path: str | os.PathLike, overwrite: bool = False, half: bool = False,
             inputs: Sequence[str | os.PathLike] = ()) -> Path:
        """Write the bundle; ``half`` stores float weights as fp16 (half the size, same predictions).
        ``inputs`` are files the run read (its source model), never to be replaced.

        The bytes are serialised in memory and written by Python, so the file's mode follows the umask like
        every other output: safetensors' ``save_file`` creates its file with mode 0600.
        """
        from safetensors.torch import save

        meta = self.meta.model_copy(update={"geoseg_version": self.meta.geoseg_version or __version__})
        tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
                   for k, v in self.state_dict.items()}
        with atomic_output(path, overwrite, inputs=inputs) as tmp:
            tmp.write_bytes(save(tensors, metadata={METADATA_KEY: meta.model_dump_json()}))
        return Path(path)

    @property
    def stored_half(self) -> bool:
        """Whether the weights are held as fp16 (a bundle saved with ``half`` loads so): what a tool that
        rewrites a bundle (pruning) keeps unless told otherwise."""
        import torch

        return any(v.dtype == torch.float16 for v in self.state_dict.values())

    @classmethod
    def from_module(cls, meta: BundleMeta, module: torch.nn.Module) -> "ModelBundle":
        return cls(meta, {k: v.detach().cpu() for k, v in module.state_dict().items()})


def read_bundle_meta(path: str | os.PathLike) -> BundleMeta:
    """Only the metadata of a ``.safetensors`` bundle (fast: reads the header, not the weights)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found; pass an existing .safetensors bundle")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelError(f"{path}: not a safetensors model bundle ({err}); pass a geoseg .safetensors file") from err
    if METADATA_KEY not in header:
        raise ModelError(f"{path}: safetensors file without geoseg metadata; export it with geoseg")
    return parse_meta(header[METADATA_KEY], path)


def load_bundle(path: str | os.PathLike) -> ModelBundle:
    """Read and validate a bundle (metadata and weights)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_bundle_meta(path)
    return ModelBundle(meta, load_file(str(path)), path)
