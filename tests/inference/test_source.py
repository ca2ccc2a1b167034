"""The one read path: window -> validity -> normalise -> mirror-pad to the tile."""
from __future__ import annotations

import numpy as np
import rasterio

from geoseg.inference.source import TileSource, mirror_pad
from geoseg.inference.tiling import TileGrid
from geoseg.io.rasters import read_tile
from geoseg.model.normalise import Normaliser

from tests.conftest import LANDSAT7_FRAME, tiny_meta


def test_mirror_pad_continues_the_pixels_and_leaves_full_tiles_alone() -> None:
    data = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    padded = mirror_pad(data, 5, 4)
    assert padded.shape == (2, 5, 4)
    assert np.array_equal(padded[:, :3, :2], data)
    assert np.array_equal(padded[:, 3:, :2], data[:, ::-1][:, :2])        # rows mirrored back from the edge
    assert np.array_equal(padded[:, :3, 2:], data[:, :, ::-1])
    assert mirror_pad(data, 3, 2) is data


def test_tiles_are_normalised_padded_and_skipped_when_all_nodata() -> None:
    meta = tiny_meta(["red", "green", "blue"], 3, mean=80.0, std=40.0, input_dtype="uint8")
    with rasterio.open(LANDSAT7_FRAME) as ds:
        source = TileSource(ds, [1, 2, 3], meta, 64)
        grid = TileGrid(ds.height, ds.width, 64, 16)
        reads = [(tile, *source.read(tile)) for tile in grid]
        empty = [t for t, pixels, valid in reads if pixels is None]
        assert empty and all(not valid.any() for t, pixels, valid in reads if pixels is None)
        for tile, pixels, valid in reads:
            if pixels is None:
                continue
            assert pixels.shape == (3, 64, 64) and pixels.dtype == np.float32
            data, expected_valid = read_tile(ds, [1, 2, 3], tile.y, tile.x, tile.height, tile.width)
            assert np.array_equal(valid, expected_valid)
            np.testing.assert_array_equal(pixels[:, :tile.height, :tile.width], Normaliser(meta)(data, valid))
