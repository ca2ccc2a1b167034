"""The contract between an instance-segmentation model and the tiled engine: the objects of one tile.

The engine (tiling, cross-tile merge, outputs) needs nothing else from a model, so the merge is tested with a
detector that returns known objects, and a trained Mask R-CNN plugs in unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TileInstances:
    """Objects found in one tile, in that tile's pixels.

    ``masks`` (K, H, W) bool, one object per plane; ``scores`` (K,) float32 in [0, 1]; ``class_ids`` (K,)
    int32, ids of the bundle's classes (never 0, which is the background).
    """

    masks: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.scores)
        if self.masks.ndim != 3 or self.masks.shape[0] != count or len(self.class_ids) != count:
            raise ValueError(
                f"masks {self.masks.shape}, scores {len(self.scores)} and class_ids {len(self.class_ids)} "
                "must describe the same number of objects"
            )

    @classmethod
    def empty(cls, height: int, width: int) -> TileInstances:
        """No object in a tile of this size."""
        return cls(
            np.zeros((0, height, width), bool), np.zeros(0, np.float32), np.zeros(0, np.int32)
        )


class InstanceDetector(Protocol):
    """Finds objects in a batch of tiles."""

    def detect(self, tiles: np.ndarray) -> list[TileInstances]:
        """``tiles`` (N, C, H, W) float32, normalised as the bundle says; one result per tile, same order."""
        ...
