"""geoseg: satellite and aerial scenes in, georeferenced land-cover maps and polygons out.

The public API is loaded lazily: ``import geoseg`` stays cheap, and vectorizing a class map never imports
torch, nor predicting geopandas (each costs hundreds of MB and seconds of start-up). The layers behind it
(io, model, inference, vector, evaluation, training) are described in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BundleMeta": "geoseg.model.meta", "ModelBundle": "geoseg.model.bundle", "load_bundle": "geoseg.model.bundle",
    "load_model": "geoseg.model.loading",
    "PredictionSummary": "geoseg.summaries", "Predictor": "geoseg.inference.predictor",
    "PredictorConfig": "geoseg.inference.config",
    "predict": "geoseg.inference.predictor",
    "VectorizeSummary": "geoseg.summaries", "vectorize": "geoseg.vector.vectorize",
    "VectorizeConfig": "geoseg.vector.config",
    "EvaluationResult": "geoseg.evaluation.evaluate", "evaluate": "geoseg.evaluation.evaluate",
    "ObjectPredictor": "geoseg.vector.objects", "ObjectSummary": "geoseg.summaries",
    "evaluate_objects": "geoseg.evaluation.instances", "ObjectEvaluation": "geoseg.evaluation.instances",
    "TrainConfig": "geoseg.training", "TrainResult": "geoseg.training", "train": "geoseg.training",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
