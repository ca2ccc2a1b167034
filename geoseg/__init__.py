"""geoseg: satellite and aerial scenes in, georeferenced land-cover maps and polygons out.

The public API is loaded lazily: ``import geoseg`` stays cheap, and vectorizing a class map never imports
torch, nor predicting geopandas (each costs hundreds of MB and seconds of start-up).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BundleMeta": "geoseg.bundle", "ModelBundle": "geoseg.bundle", "load_bundle": "geoseg.bundle",
    "PredictionSummary": "geoseg.predict", "Predictor": "geoseg.predict", "load_model": "geoseg.predict",
    "predict": "geoseg.predict",
    "VectorizeSummary": "geoseg.vectorize", "vectorize": "geoseg.vectorize",
    "EvaluationResult": "geoseg.evaluate", "evaluate": "geoseg.evaluate",
    "TrainConfig": "geoseg.train", "TrainResult": "geoseg.train", "train": "geoseg.train",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
