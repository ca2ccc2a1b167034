"""The object engine: tiles of a real GeoTIFF through the real read path, merged into scene objects."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoseg.inference.instances import DetectionStats, ObjectMerger, SceneObject, detect_objects
from geoseg.inference.tiling import TileGrid
from geoseg.model.instances import TileInstances
from tests.objects_stub import IdDetector, as_set, expected_objects, id_meta, write_ids


def run(path: Path, tile: int, overlap: int, batch: int = 1, pipelined: bool = True, fill: float | None = None
        ) -> tuple[list[SceneObject], DetectionStats, IdDetector]:
    import rasterio

    with rasterio.open(path) as ds:
        grid = TileGrid(ds.height, ds.width, tile, overlap)
    meta = id_meta(tile, overlap)
    meta = meta.model_copy(update={"input_nodata": None})
    detector = IdDetector(meta)
    stats = DetectionStats()
    objects = [o for batch_ in detect_objects(detector, meta, str(path), ([1], fill), grid, batch, 0.0, 64, stats,
                                              pipelined=pipelined) for o in batch_]
    return objects, stats, detector


def paint(height: int, width: int, shapes: list[tuple[int, int, int, int, bool]]) -> np.ndarray:
    """Objects (y, x, h, w, ellipse) painted with ids 1.. where they do not touch an earlier one."""
    ids = np.zeros((height, width), np.uint32)
    yy, xx = np.mgrid[:height, :width]
    next_id = 1
    for y, x, h, w, ellipse in shapes:
        y, x = min(y, height - h), min(x, width - w)
        if ids[max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1].any():
            continue                                     # keep objects apart: touching ones are still two
        if ellipse:
            cy, cx, ry, rx = y + (h - 1) / 2, x + (w - 1) / 2, max(h / 2, 0.5), max(w / 2, 0.5)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            mask = (yy >= y) & (yy < y + h) & (xx >= x) & (xx < x + w)
        ids[mask] = next_id
        next_id += 1
    return ids


MAX_SIZE = 12
layouts = st.tuples(
    st.integers(40, 110), st.integers(40, 110),
    st.lists(st.tuples(st.integers(0, 110), st.integers(0, 110), st.integers(1, MAX_SIZE),
                       st.integers(1, MAX_SIZE), st.booleans()), max_size=14))
tilings = st.tuples(st.sampled_from([24, 32, 48, 64]), st.integers(MAX_SIZE, 32), st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts, tiling=tilings)
def test_objects_do_not_depend_on_the_tiling(tmp_path: Path, layout: tuple, tiling: tuple) -> None:
    """Every object smaller than the overlap comes out exactly once and exactly as painted, whatever the tile
    size, overlap (above the object size) and batch size: pieces cut at tile edges defer to a whole view."""
    height, width, shapes = layout
    tile, overlap, batch = tiling
    overlap = min(overlap, tile // 2)
    if overlap < MAX_SIZE:
        tile, overlap = 2 * MAX_SIZE, MAX_SIZE
    ids = paint(height, width, shapes)
    path = write_ids(tmp_path / f"ids_{height}_{width}_{len(shapes)}.tif", ids)
    objects, stats, _ = run(path, tile, overlap, batch)
    assert as_set(objects) == expected_objects(ids)
    assert len(objects) == len(expected_objects(ids))
    assert stats.objects == len(objects)


def test_objects_larger_than_the_overlap_are_the_union_of_their_pieces(tmp_path: Path) -> None:
    """An object no tile sees whole (a 70 px building on 32 px tiles) is put together from its pieces."""
    ids = np.zeros((100, 120), np.uint32)
    ids[10:80, 20:95] = 1                     # seen only in pieces
    ids[85:95, 5:12] = 2                      # small, whole in some tile
    ids[40:60, 100:118] = 3
    path = write_ids(tmp_path / "big.tif", ids)
    for tile, overlap in ((32, 8), (48, 16), (64, 12)):
        objects, _, _ = run(path, tile, overlap)
        assert as_set(objects) == expected_objects(ids), (tile, overlap)


def test_merge_memory_holds_only_open_seams(tmp_path: Path) -> None:
    """A tall scene of many objects: the merger never holds more than about two rows of tiles' objects."""
    ids = np.zeros((640, 96), np.uint32)
    for k, y in enumerate(range(2, 636, 8)):
        for j, x in enumerate(range(2, 92, 8)):
            ids[y:y + 5, x:x + 5] = 1 + k * 12 + j
    path = write_ids(tmp_path / "tall.tif", ids)
    objects, stats, _ = run(path, 32, 8)
    assert as_set(objects) == expected_objects(ids)
    per_row_of_tiles = 12 * 4 * 4            # objects across the scene in a 32 px band, seen by <= 4 tiles each
    assert stats.peak_pending <= 2 * per_row_of_tiles < len(objects)


def test_nodata_is_never_an_object(tmp_path: Path) -> None:
    """The read path's nodata rules hold: tiles of nodata are not run, objects lose their nodata pixels."""
    ids = np.zeros((64, 96), np.uint32)
    ids[10:20, 10:20] = 1
    ids[30:40, 40:50] = 2
    ids[:, 64:] = 99                          # a nodata frame declared as a fill value (--nodata 99)
    ids[32:36, 40:50] = 99                    # cuts object 2 in two: its larger part is kept
    path = write_ids(tmp_path / "frame.tif", ids)
    objects, stats, _ = run(path, 32, 8, fill=99)
    expected = ids.copy()
    expected[expected == 99] = 0
    expected[30:32, 40:50] = 0
    assert as_set(objects) == expected_objects(expected)
    assert stats.tiles_run < stats.tiles_total


def test_pipelined_and_sequential_runs_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    shapes = [(int(y), int(x), int(h), int(w), bool(e)) for y, x, h, w, e in
              zip(rng.integers(0, 90, 30), rng.integers(0, 90, 30), rng.integers(2, 10, 30), rng.integers(2, 10, 30),
                  rng.integers(0, 2, 30))]
    path = write_ids(tmp_path / "many.tif", paint(100, 100, shapes))
    a, _, _ = run(path, 32, 12, 2, pipelined=True)
    b, _, _ = run(path, 32, 12, 1, pipelined=False)
    assert [(o.y, o.x, o.mask.tobytes()) for o in a] == [(o.y, o.x, o.mask.tobytes()) for o in b]


def test_low_scores_and_other_classes_do_not_merge() -> None:
    """Two tiles see the same pixels as objects of two classes: two objects; below the threshold: none."""
    grid = TileGrid(20, 36, 20, 4)
    merger = ObjectMerger(grid, score_threshold=0.3)
    left, right = grid.tile_at(0, 0), grid.tile_at(0, 1)
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 5:10, 16:20] = True                 # at the left tile's right edge: cut there
    valid = np.ones((20, 20), bool)
    merger.add(left, TileInstances(mask, np.array([0.9], np.float32), np.array([1], np.int32)), valid)
    other = np.zeros((2, 20, 20), bool)
    other[:, 5:10, 0:6] = True                  # the same pixels and 2 more columns, seen whole by the right tile
    objects = merger.add(right, TileInstances(other, np.array([0.8, 0.1], np.float32), np.array([2, 1], np.int32)),
                         valid)
    assert sorted((o.class_id, o.mask.shape) for o in objects) == [(1, (5, 4)), (2, (5, 6))]
