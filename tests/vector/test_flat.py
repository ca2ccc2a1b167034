"""FlatPolygons: the flat arrays give the same WKB, areas, bounds and subsets as shapely's own."""
from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.vector.flat import FlatPolygons
from geoseg.vector.polygonize import polygonize_array


def polygons_of(seed: int, size: int) -> np.ndarray:
    """GDAL polygons of a random class raster: many shapes, many holes, shifted off the origin."""
    rng = np.random.default_rng(seed)
    data = np.kron(rng.integers(0, 3, (size, size)), np.ones((2, 2))).astype(np.uint8)
    data[rng.random(data.shape) < 0.1] = 3
    return polygonize_array(data, None, 7, 11).polygons.geometries()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_flat_operations_match_shapely(seed, size):
    geoms = polygons_of(seed, size)
    flat = FlatPolygons.from_geometries(geoms)
    assert flat.to_wkb().to_pylist() == list(shapely.to_wkb(geoms))     # byte for byte
    np.testing.assert_allclose(flat.areas(), shapely.area(geoms), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(flat.bounds(), shapely.bounds(geoms))
    keep = np.random.default_rng(seed).random(len(geoms)) < 0.5
    assert shapely.equals(flat.subset(keep).geometries(), geoms[keep]).all()
    both = FlatPolygons.concat([flat.subset(~keep), FlatPolygons.empty(), flat.subset(keep)])
    assert shapely.equals(both.geometries(), np.concatenate([geoms[~keep], geoms[keep]])).all()


def test_holes_are_subtracted_and_coordinates_mapped():
    square = shapely.box(0, 0, 10, 10).difference(shapely.box(2, 2, 4, 4)).difference(shapely.box(5, 5, 8, 6))
    flat = FlatPolygons.from_geometries(np.array([square, shapely.box(20, 0, 21, 3)]))
    np.testing.assert_array_equal(flat.areas(), [100 - 4 - 3, 3])
    doubled = flat.with_coords(lambda xy: xy * 2)
    np.testing.assert_array_equal(doubled.areas(), [4 * 93, 12])
    assert len(FlatPolygons.empty()) == 0 and len(FlatPolygons.empty().to_wkb()) == 0


def test_take_reorders_polygons_with_their_holes() -> None:
    geoms = np.array([shapely.box(0, 0, 1, 1), shapely.box(0, 0, 9, 9).difference(shapely.box(2, 2, 4, 4)),
                      shapely.box(5, 5, 7, 8)], dtype=object)
    flat = FlatPolygons.from_geometries(geoms)
    taken = flat.take(np.array([2, 0, 1])).geometries()
    assert all(a.equals(b) for a, b in zip(taken, geoms[[2, 0, 1]]))
    assert len(flat.take(np.array([], int))) == 0
