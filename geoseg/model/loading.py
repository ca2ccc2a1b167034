"""Find and load a model by path or default: ``.safetensors`` bundles, ``.onnx`` models, the embedded one."""
from __future__ import annotations

import os
from pathlib import Path

from geoseg.errors import ModelError
from geoseg.model.bundle import ModelBundle, load_bundle, read_bundle_meta
from geoseg.model.meta import BundleMeta
from geoseg.model.onnx import OnnxBundle, load_onnx, read_onnx_meta

#: The embedded default model (Landsat 8 B2-B5 -> 8 NLCD classes; see its CREDITS.md).
DEFAULT_MODEL_PATH = Path(__file__).parents[1] / "data" / "default_model" / "zion_landcover.safetensors"
ModelLike = ModelBundle | OnnxBundle | str | os.PathLike | None


def read_meta(path: str | os.PathLike) -> BundleMeta:
    """Only the metadata (fast: reads the header, not the weights); ``.onnx`` models carry it too."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return read_onnx_meta(path)
    return read_bundle_meta(path)


def load_model(model: ModelLike = None) -> ModelBundle | OnnxBundle:
    """A bundle from a path (``.onnx``: an ONNX model), or the embedded default model when ``model`` is None."""
    if isinstance(model, (ModelBundle, OnnxBundle)):
        return model
    if model is not None and Path(model).suffix.lower() == ".onnx":
        return load_onnx(model)
    if model is None:
        if not DEFAULT_MODEL_PATH.is_file():
            raise ModelError(f"{DEFAULT_MODEL_PATH}: no default model is installed; pass {{model}} MODEL.safetensors",
                             parameters=("model",))
        model = DEFAULT_MODEL_PATH
    return load_bundle(model)
