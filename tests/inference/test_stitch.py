"""Stitching is exact: tiled + blended probabilities equal one whole-scene forward pass.

The network is a SimpleFCN with a 3 px receptive radius, smaller than the blending margin (overlap/4 =
8 px), so every weighted contribution was computed with full context. Any error in windows, offsets,
carries or normalisation of the weights shows up here, independent of model quality.
"""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geoseg.inference.predictor import Predictor
from geoseg.model.normalise import Normaliser
from geoseg.inference.stitch import Region, StripAccumulator
from geoseg.inference.tiling import TileGrid

from tests.conftest import ZION, tiny_bundle, tiny_meta


def _scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(ZION) as ds:
        data = ds.read(window=Window(17, 9, width, height), out_dtype="float32")
    return data, np.ones((height, width), bool)


def _stitched(predictor: Predictor, grid: TileGrid, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.full((predictor.meta.num_classes, grid.height, grid.width), np.nan, np.float32)
    emitted = np.zeros((grid.height, grid.width), np.int32)

    def on_final(region: Region) -> None:
        h, w = region.weight.shape
        out[:, region.y:region.y + h, region.x:region.x + w] = region.weighted / region.weight
        emitted[region.y:region.y + h, region.x:region.x + w] += 1

    acc = StripAccumulator(grid, predictor.meta.num_classes, on_final)
    normalise = Normaliser(predictor.meta)
    for tile in grid:
        window = image[:, tile.slices[0], tile.slices[1]]
        probs = predictor.forward(normalise(window, valid[tile.slices])[None])[0]
        acc.add(tile, probs, valid[tile.slices])
    assert acc.finished()
    assert (emitted == 1).all(), "every pixel must be emitted exactly once"
    return out


@pytest.mark.parametrize("blend", ["hann", "none"])
@pytest.mark.parametrize("shape", [(300, 270), (200, 97), (64, 200)])
def test_tiled_equals_whole_scene(blend: str, shape: tuple[int, int]) -> None:
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, mean=10000.0, std=2500.0)
    predictor = Predictor(tiny_bundle(meta), device="cpu", precision="fp32", tile=64, overlap=32, blend=blend)
    image, valid = _scene(*shape)
    whole = predictor.forward(Normaliser(meta)(image, valid)[None])[0]
    tiled = _stitched(predictor, TileGrid(*shape, 64, 32, blend), image, valid)  # type: ignore[arg-type]
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_tiles_out_of_order_are_refused() -> None:
    grid = TileGrid(100, 100, 64, 16)
    acc = StripAccumulator(grid, 2, lambda region: None)
    tiles = list(grid)
    with pytest.raises(ValueError, match="grid order"):
        acc.add(tiles[1], None, np.ones((tiles[1].height, tiles[1].width), bool))
