"""Training: YAML config → sampled windows from (scene, labels) pairs → augmented batches → a model bundle.

``config`` validates the settings, ``data`` holds scenes, labels and the spatial split, ``augment`` and
``losses`` shape the batches and the objective, ``loop`` runs, checkpoints and writes the bundle.
"""
import sys
import types
from typing import Any

from geoseg.train.config import TrainConfig, load_config
from geoseg.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]


class _CallablePackage(types.ModuleType):
    """``geoseg.train(config)`` works even after ``geoseg.train`` has become this package's name.

    Importing a submodule binds the package to ``geoseg.train``, shadowing the lazily exported function
    of the same name; calling the package calls the function.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
