"""Find and load a model by path or default: ``.safetensors`` bundles, ``.onnx`` models, the embedded one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

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


def load_model(model: ModelLike = None, task: Literal["semantic", "instance"] | None = "semantic"
               ) -> ModelBundle | OnnxBundle:
    """A bundle from a path (``.onnx``: an ONNX model), or the embedded default model when ``model`` is None.

    ``task`` is what the caller runs (the class-map predictor, evaluation and compression: ``semantic``); a
    model made for the other task is refused, saying what it is. None accepts any model.
    """
    if isinstance(model, (ModelBundle, OnnxBundle)):
        loaded = model
    elif model is not None and Path(model).suffix.lower() == ".onnx":
        loaded = load_onnx(model)
    else:
        if model is None:
            if not DEFAULT_MODEL_PATH.is_file():
                raise ModelError(f"{DEFAULT_MODEL_PATH}: no default model is installed; pass {{model}} "
                                 "MODEL.safetensors", parameters=("model",))
            model = DEFAULT_MODEL_PATH
        check_task(read_bundle_meta(model), model, task)          # before reading the weights
        loaded = load_bundle(model)
    check_task(loaded.meta, getattr(loaded, "path", None) or model, task)
    return loaded


def check_task(meta: BundleMeta, where: object, task: str | None) -> None:
    """Refuse a model made for another task than ``task`` (None: any), in one line that says what it is."""
    if task is None or meta.task == task:
        return
    classes = ", ".join(c.name for c in meta.scheme.classes)
    found = (f"an instance segmentation model (objects: {classes})" if meta.task == "instance"
             else f"a semantic segmentation model (a class per pixel: {classes})")
    wanted = "an instance" if task == "instance" else "a semantic"
    raise ModelError(f"{where or meta.name}: {found}; this needs {wanted} segmentation model")
