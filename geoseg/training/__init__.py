"""Training: YAML config → sampled windows from (scene, labels) pairs → augmented batches → a model bundle.

``config`` validates the settings, ``data`` holds scenes, labels and the spatial split, ``augment`` and
``losses`` shape the batches and the objective, ``loop`` runs, checkpoints and writes the bundle.
"""
from geoseg.training.config import TrainConfig, load_config
from geoseg.training.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]
