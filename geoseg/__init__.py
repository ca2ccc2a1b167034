"""geoseg: satellite and aerial scenes in, georeferenced land-cover maps and polygons out."""
from __future__ import annotations

__version__ = "0.1.0"

from geoseg.bundle import BundleMeta, ModelBundle, load_bundle  # noqa: E402
from geoseg.predict import PredictionSummary, Predictor, load_model, predict  # noqa: E402
from geoseg.vectorize import VectorizeSummary, vectorize  # noqa: E402
from geoseg.evaluate import EvaluationResult, evaluate  # noqa: E402
# ``geoseg.train`` / ``geoseg.evaluate`` are the functions; import their modules with ``from geoseg.train import
# augment`` or ``from geoseg.evaluate import ...`` (``import geoseg.train.augment as a`` finds the function).
from geoseg.train import TrainConfig, TrainResult, train  # noqa: E402

__all__ = ["BundleMeta", "ModelBundle", "PredictionSummary", "Predictor", "__version__", "load_bundle",
           "load_model", "predict", "vectorize", "VectorizeSummary", "EvaluationResult", "evaluate", "TrainConfig",
           "TrainResult", "train"]
