"""Grid arithmetic and blending windows: coverage, placement inside the scene, partition of unity."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.errors import ParameterError
from geoseg.inference.tiling import TileGrid, axis_starts, block_windows, halo_windows, row_windows


@given(size=st.integers(1, 3000), tile=st.integers(16, 512), frac=st.floats(0, 0.49))
def test_axis_starts_cover_every_pixel_and_stay_inside(size: int, tile: int, frac: float) -> None:
    overlap = int(tile * frac)
    starts = axis_starts(size, tile, overlap)
    assert starts[0] == 0
    assert list(starts) == sorted(set(starts))
    if size <= tile:
        assert starts == (0,)
        return
    assert all(0 <= s <= size - tile for s in starts)
    assert starts[-1] == size - tile
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    gaps = np.diff(starts)
    assert (gaps[:-1] == tile - overlap).all() and (gaps <= tile - overlap).all()


def test_grids_follow_the_one_tiling_rule() -> None:
    with pytest.raises(ParameterError, match=r"^overlap 17: must be between 0 and half of tile 32$"):
        axis_starts(100, 32, 17)
    with pytest.raises(ParameterError, match="^tile 0: must be at least 1 px"):
        TileGrid(100, 100, 0, 0)
    assert axis_starts(100, 32, 16) == (0, 16, 32, 48, 64, 68)


def _total_weight(grid: TileGrid) -> np.ndarray:
    total = np.zeros((grid.height, grid.width), np.float64)
    for tile in grid:
        total[tile.slices] += grid.weights(tile)
    return total


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 400), width=st.integers(1, 400), tile=st.sampled_from([32, 64, 128]),
       overlap_frac=st.sampled_from([0.125, 0.25, 0.375]), blend=st.sampled_from(["hann", "gaussian", "none"]))
def test_every_pixel_gets_positive_weight(height: int, width: int, tile: int, overlap_frac: float, blend: str) -> None:
    grid = TileGrid(height, width, tile, int(tile * overlap_frac), blend)  # type: ignore[arg-type]
    assert (_total_weight(grid) > 0).all()


def test_hann_windows_sum_to_one_on_a_regular_grid() -> None:
    # 4 strides of 48 + 16 overlap: every start is regular, so opposite ramps must sum to exactly 1.
    grid = TileGrid(16 + 4 * 48, 16 + 4 * 48, 64, 16, "hann")
    np.testing.assert_allclose(_total_weight(grid), 1.0, atol=1e-6)


def test_scene_borders_keep_full_weight() -> None:
    grid = TileGrid(300, 300, 64, 32, "hann")
    first = grid.tile_at(0, 0)
    w = grid.weights(first)
    assert w[0, 0] == 1.0 and w[0, 20] == 1.0 and w[20, 0] == 1.0
    assert w[-1, -1] == 0.0  # interior corner: inside the margin
    last = grid.tile_at(grid.shape[0] - 1, grid.shape[1] - 1)
    assert grid.weights(last)[-1, -1] == 1.0


def test_small_scene_gets_one_clipped_tile() -> None:
    grid = TileGrid(50, 70, 64, 16)
    tiles = list(grid)
    assert len(tiles) == 2 and (tiles[0].height, tiles[0].width) == (50, 64) and tiles[1].x == 6
    single = list(TileGrid(50, 60, 64, 16))
    assert len(single) == 1 and (single[0].height, single[0].width) == (50, 60)
    assert (TileGrid(50, 60, 64, 16).weights(single[0]) == 1).all()


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 300), width=st.integers(1, 300), block=st.integers(4, 128), halo=st.integers(0, 40))
def test_blocks_and_halos_partition_the_raster(height: int, width: int, block: int, halo: int) -> None:
    count = np.zeros((height, width), int)
    for window in block_windows(height, width, block):
        count[window.toslices()] += 1
    assert (count == 1).all()
    rows = row_windows(height, width, block)
    assert [(w.row_off, w.height, w.width) for w in rows] == [
        (r, min(block, height - r), width) for r in range(0, height, block)]
    for core, context in halo_windows(height, width, block, halo):
        assert context.row_off == max(0, core.row_off - halo) and context.col_off == max(0, core.col_off - halo)
        assert context.row_off + context.height == min(height, core.row_off + core.height + halo)
        assert context.col_off + context.width == min(width, core.col_off + core.width + halo)
