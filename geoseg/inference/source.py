"""The one read path from a scene to model input: window -> validity -> normalise -> pad to the tile.

Prediction (class maps and objects), int8 calibration and the pipeline benchmark read tiles through
:class:`TileSource`, so the
model sees the same pixels whoever asks: the bundle's bands, the nodata rules of
:func:`~geoseg.io.rasters.read_tile`, the bundle's normalisation (:class:`~geoseg.model.normalise.Normaliser`;
a scene-normalised bundle's comes from the scene's own sampled statistics) and mirror padding (:func:`mirror_pad`). Training validation runs on scenes already normalised in memory,
so it shares only the padding.
"""
from __future__ import annotations

import dataclasses

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.inference.stages import prefetch
from geoseg.inference.tiling import Tile, TileGrid
from geoseg.io.rasters import gdal_env, read_tile
from geoseg.model.meta import BundleMeta
from geoseg.model.normalise import Normaliser


def mirror_pad(data: np.ndarray, height: int, width: int) -> np.ndarray:
    """``data`` (bands, h, w) mirrored out at the bottom and right to ``height`` x ``width`` (as is if it fits).

    Mirroring continues the scene's texture; zeros would look like a dark border to the network.
    """
    _, h, w = data.shape
    if h == height and w == width:
        return data
    return np.pad(data, ((0, 0), (0, height - h), (0, width - w)), mode="symmetric")


class TileSource:
    """Model input for the tiles of one open scene, each padded to ``tile`` x ``tile`` px."""

    def __init__(self, dataset: rasterio.DatasetReader, indexes: Sequence[int], meta: BundleMeta, tile: int,
                 fill: float | None = None):
        self.dataset = dataset
        self.fill = fill                 # a fill value declared by the user (``--nodata``)
        self.indexes = list(indexes)
        self.tile = tile
        self.nodata = meta.input_nodata
        self.normalise = Normaliser.for_scene(meta, self._read_window, dataset.height, dataset.width)

    def _read_window(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return read_tile(self.dataset, self.indexes, window.row_off, window.col_off, window.height, window.width,
                         self.nodata, self.fill)

    def read(self, tile: Tile) -> tuple[np.ndarray | None, np.ndarray]:
        """Normalised, padded pixels (bands, tile, tile) and the validity (h, w) of ``tile``'s window.

        The pixels are None when no pixel is valid: such tiles are not worth a forward pass.
        """
        data, valid = read_tile(self.dataset, self.indexes, tile.y, tile.x, tile.height, tile.width, self.nodata,
                                self.fill)
        if not valid.any():
            return None, valid
        return mirror_pad(self.normalise(data, valid), self.tile, self.tile), valid


def read_tiles(path: str, indexes: Sequence[int], fill: float | None, meta: BundleMeta, grid: TileGrid,
               cache_mb: int, rows: tuple[int, int] | None = None, y_offset: int = 0
               ) -> Iterator[tuple[Tile, np.ndarray | None, np.ndarray]]:
    """(tile, model input or None when all nodata, validity) in grid order, from the reader's own dataset
    (a reader thread must not share the caller's handle). ``rows``: only grid rows ``first`` to ``stop - 1``.
    ``y_offset``: the file holds only the scene's rows from there on (a lazy array's band of rows), so
    tiles are read at their rows less the offset."""
    with gdal_env(cache_mb), rasterio.open(path) as ds:
        source = TileSource(ds, indexes, meta, grid.tile, fill=fill)
        for tile in grid.rows(*rows) if rows else grid:
            yield tile, *source.read(dataclasses.replace(tile, y=tile.y - y_offset) if y_offset else tile)


def batches_of(items: Iterable[tuple[Tile, np.ndarray | None, np.ndarray]], batch_size: int
               ) -> Iterator[tuple[list[Tile], list[np.ndarray], list[int], np.ndarray | None]]:
    """Groups of tiles in grid order with their validity masks, the positions of the tiles with data
    (``live``) and those tiles stacked for one forward pass (at most ``batch_size``; None if none).

    All-nodata tiles ride along so later stages see every tile in order, but are never run through the
    model; a group holds at most ``4 * batch_size`` tiles, so a long nodata stretch still moves on.
    """
    tiles: list[Tile] = []
    valids: list[np.ndarray] = []
    live: list[int] = []
    arrays: list[np.ndarray] = []
    for tile, normalised, valid in items:
        if normalised is not None:
            live.append(len(tiles))
            arrays.append(normalised)
        tiles.append(tile)
        valids.append(valid)
        if len(arrays) >= batch_size or len(tiles) >= 4 * batch_size:
            yield tiles, valids, live, np.stack(arrays) if arrays else None
            tiles, valids, live, arrays = [], [], [], []
    if tiles:
        yield tiles, valids, live, np.stack(arrays) if arrays else None


def tile_batches(path: str, indexes: Sequence[int], fill: float | None, meta: BundleMeta, grid: TileGrid,
                 cache_mb: int, batch_size: int, pipelined: bool = True, rows: tuple[int, int] | None = None,
                 y_offset: int = 0) -> Iterator[tuple[list[Tile], list[np.ndarray], list[int], np.ndarray | None]]:
    """:func:`batches_of` the scene's tiles (``rows`` and ``y_offset``: see :func:`read_tiles`), read on a thread
    ahead of the model when ``pipelined``."""
    def read() -> Iterator[tuple[Tile, np.ndarray | None, np.ndarray]]:
        return read_tiles(path, indexes, fill, meta, grid, cache_mb, rows, y_offset)

    return batches_of(prefetch(read, depth=2 * batch_size + 2) if pipelined else read(), batch_size)
