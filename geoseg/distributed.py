"""geoseg on a Dask cluster: many scenes (:func:`predict_many`) or one huge scene cut into partitions
(:func:`predict_partitioned`), both resumable, both byte-identical to a run in one process.

Loaded lazily, like the package: importing this module imports neither Dask nor torch. The engine lives in
:mod:`geoseg.inference.distributed` and :mod:`geoseg.inference.partitioned`.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "predict_many": "geoseg.inference.distributed", "RunManifest": "geoseg.inference.distributed",
    "SceneRecord": "geoseg.inference.distributed", "scene_list": "geoseg.inference.distributed",
    "predict_partitioned": "geoseg.inference.partitioned", "PartsManifest": "geoseg.inference.partitioned",
    "work_folder": "geoseg.inference.partitioned",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geoseg.distributed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
