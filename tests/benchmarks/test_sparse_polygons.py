"""The analyst simulator of benchmarks/bench_sparse.py: seeded, and every polygon inside one class of the reference."""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.features import rasterize

from benchmarks.sparse_polygons import draw_polygons
from tests.conftest import ZION_LABELS


def _reference() -> tuple[np.ndarray, np.ndarray, rasterio.Affine]:
    with rasterio.open(ZION_LABELS) as src:
        reference = src.read(1).astype(np.int32)
        return reference, reference != 255, src.transform


def test_polygons_lie_inside_homogeneous_areas_of_their_class() -> None:
    reference, valid, transform = _reference()
    drawn = draw_polygons(reference, valid, transform, list(range(1, 9)), 5, seed=3)
    assert drawn.polygons and len(drawn.polygons) == len(drawn.class_ids)
    for polygon, class_id in zip(drawn.polygons, drawn.class_ids):
        covered = rasterize([(polygon, 1)], out_shape=reference.shape, transform=transform, all_touched=True) == 1
        assert covered.sum() >= 4                                    # a patch, not a point
        assert (reference[covered] == class_id).all()
    counts = {c: drawn.class_ids.count(c) for c in range(1, 9)}
    assert all(counts[c] == 5 for c in counts if c not in drawn.short)
    assert all(counts[c] == k < 5 for c, k in drawn.short.items())   # rare classes: what fits, and said so
    covered = rasterize([(p, 1) for p in drawn.polygons], out_shape=reference.shape, transform=transform) == 1
    assert covered.mean() < 0.05                                     # sparse labels


def test_same_seed_same_polygons_other_seed_others() -> None:
    reference, valid, transform = _reference()
    a = draw_polygons(reference, valid, transform, [4, 5], 4, seed=1)
    b = draw_polygons(reference, valid, transform, [4, 5], 4, seed=1)
    c = draw_polygons(reference, valid, transform, [4, 5], 4, seed=2)
    assert [p.wkb for p in a.polygons] == [p.wkb for p in b.polygons]
    assert [p.wkb for p in a.polygons] != [p.wkb for p in c.polygons]
