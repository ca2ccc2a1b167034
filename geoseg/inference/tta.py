"""Test-time augmentation: the mean of the model's probabilities over the 8 flips and quarter turns of a tile.

A network trained from a few polygons is not exactly invariant to the orientation of what it sees;
averaging the dihedral group's eight views (each mapped back before averaging) removes the part of its
error that depends on orientation, at 8 forward passes per tile. It acts on whole tiles, before blending,
so the blended map stays identical whatever the output block, batch size or number of workers.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: (quarter turns, mirrored) of the eight views, the identity first.
VIEWS: tuple[tuple[int, bool], ...] = tuple((turns, mirrored) for turns in range(4) for mirrored in (False, True))


def dihedral_mean(forward: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """Mean probabilities (n, classes, h, w) of ``forward`` over the 8 views of ``batch`` (n, bands, h, w)."""
    total: np.ndarray | None = None
    for turns, mirrored in VIEWS:
        view = np.rot90(batch, turns, axes=(2, 3))
        view = view[..., ::-1] if mirrored else view
        probabilities = forward(np.ascontiguousarray(view))
        probabilities = probabilities[..., ::-1] if mirrored else probabilities
        probabilities = np.rot90(probabilities, -turns, axes=(2, 3))
        total = probabilities.astype(np.float32, copy=True) if total is None else total + probabilities
    assert total is not None
    total /= len(VIEWS)
    return total
