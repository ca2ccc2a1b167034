"""A model as the producer of a class map: what its STAC Item says about it (name, network, metrics)."""
from __future__ import annotations

from geoseg.io.stac import Producer
from geoseg.model.bundle import ModelBundle
from geoseg.model.loading import DEFAULT_MODEL_PATH
from geoseg.model.onnx import OnnxBundle


def model_producer(bundle: ModelBundle | OnnxBundle) -> Producer:
    """Name, network, bands -> classes, the metrics the bundle records, and its file.

    The embedded default model is named, not linked: its file lives inside the installation, and a path
    into site-packages would tell a catalog nothing it can follow.
    """
    meta = bundle.meta
    network = meta.model.architecture + (f"/{meta.model.encoder}" if meta.model.encoder else "")
    embedded = bundle.path is not None and bundle.path.resolve() == DEFAULT_MODEL_PATH.resolve()
    description = (f"{network}: {', '.join(b.name for b in meta.bands)} -> {meta.num_classes} classes"
                   + (" (geoseg's embedded default model)" if embedded else ""))
    return Producer(kind="model", name=meta.name, description=description,
                    file=None if embedded or bundle.path is None else str(bundle.path), metrics=dict(meta.metrics))
