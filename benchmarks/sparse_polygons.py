"""An analyst drawing training polygons, simulated on a reference class raster (for bench_sparse.py).

A person labelling a scene for a per-pixel classifier draws a few compact patches per class, each well
inside an area they are sure of, spread over the scene rather than stacked in one spot. This draws the same:
for each class, ``n`` star-shaped polygons (6-9 vertices) of radius 3-8 px, each centred on a pixel whose
distance to the nearest pixel of another class (or nodata, or the scene edge) exceeds the radius, so every
pixel the polygon covers is of its class in the reference; centres keep a gap to earlier polygons of any
class. A class too rare to hold ``n`` such patches gets as many as fit (down to radius 2), and the result
says so. The same seed draws the same polygons.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from scipy.ndimage import distance_transform_edt
from shapely.geometry import Polygon

RADIUS_RANGE = (3, 8)       # px: 90-240 m across at 30 m, 30-80 m at 10 m: what one draws at full zoom
MIN_RADIUS = 2
GAP = 6                     # px between the edges of two polygons


@dataclass
class Drawn:
    """Polygons (pixel-space shapes mapped through ``transform``) and their class ids, with a note per short class."""

    polygons: list[Polygon] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    short: dict[int, int] = field(default_factory=dict)      # class id -> polygons that fitted (< n)

    def notes(self, names: dict[int, str], n: int) -> list[str]:
        return [f"{names.get(c, c)}: only {k} of {n} polygons fit in homogeneous areas" for c, k in self.short.items()]


def interior_distance(reference: np.ndarray, valid: np.ndarray, class_id: int) -> np.ndarray:
    """Distance (px) from each pixel of ``class_id`` to the nearest other-class, invalid or off-scene pixel."""
    mask = np.pad((reference == class_id) & valid, 1)         # the edge counts as a boundary
    return distance_transform_edt(mask)[1:-1, 1:-1]


def draw_polygons(reference: np.ndarray, valid: np.ndarray, transform: Affine, class_ids: list[int], n: int,
                  seed: int) -> Drawn:
    """``n`` polygons per class inside homogeneous areas of ``reference`` (class ids), seeded."""
    rng = np.random.default_rng(seed)
    drawn = Drawn()
    taken: list[tuple[float, float, float]] = []             # (row, col, radius) of every polygon so far
    order = sorted(class_ids, key=lambda c: np.count_nonzero(reference == c))    # rare classes pick first
    for class_id in order:
        distance = interior_distance(reference, valid, class_id)
        placed = 0
        while placed < n:
            radius = int(rng.integers(RADIUS_RANGE[0], RADIUS_RANGE[1] + 1))
            centre = None
            while centre is None and radius >= MIN_RADIUS:
                centre = _pick_centre(distance, radius, taken, rng)
                radius = radius if centre is not None else radius - 1
            if centre is None:
                break
            taken.append((centre[0], centre[1], radius))
            drawn.polygons.append(_star(centre, radius, transform, rng))
            drawn.class_ids.append(class_id)
            placed += 1
        if placed < n:
            drawn.short[class_id] = placed
    return drawn


def _pick_centre(distance: np.ndarray, radius: int, taken: list[tuple[float, float, float]],
                 rng: np.random.Generator) -> tuple[int, int] | None:
    """A random pixel deeper than ``radius`` inside its class and clear of the polygons already drawn."""
    rows, cols = np.nonzero(distance > radius + 1.0)
    if rows.size == 0:
        return None
    ok = np.ones(rows.size, bool)
    for r, c, other in taken:
        ok &= (rows - r) ** 2 + (cols - c) ** 2 > (radius + other + GAP) ** 2
    if not ok.any():
        return None
    pick = rng.choice(np.flatnonzero(ok))
    return int(rows[pick]), int(cols[pick])


def _star(centre: tuple[int, int], radius: int, transform: Affine, rng: np.random.Generator) -> Polygon:
    """A star-shaped polygon around the pixel centre, every vertex within ``radius`` px of it, in map units."""
    count = int(rng.integers(6, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    lengths = radius * rng.uniform(0.6, 1.0, count)
    row, col = centre[0] + 0.5, centre[1] + 0.5
    return Polygon([transform @ (col + d * np.cos(a), row + d * np.sin(a)) for a, d in zip(angles, lengths)])
