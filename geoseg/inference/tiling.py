"""Every window iterator of geoseg: the global tile grid, raster blocks, and the blending windows.

Tiles of ``tile`` px start at multiples of the stride ``tile - overlap`` from the scene origin; the last
row/column is shifted inward so every tile lies inside the scene (a scene smaller than a tile gets one tile,
padded by the reader). Every caller — single machine, Dask, benchmarks — uses this one grid, so a pixel's
tiles, and the order their contributions are summed in (row-major tile order), never change.

Blending windows are products of 1-D profiles. On a side shared with a neighbour tile the profile is 0 over
a margin of ``overlap // 4`` px (where zero padding disturbs the network), then rises as ``sin²`` over the
rest of the overlap; opposite ramps of two neighbours sum to exactly 1. On a side at the scene border the
profile stays 1: border pixels keep their full weight.

Work that needs no overlap walks a raster in blocks instead (:func:`block_windows`: squares for
vectorizing, bands of full rows for thresholding and scoring with :func:`row_windows`), or in cores with a
halo of context (:func:`halo_windows`: training's in-memory validation pass).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
from rasterio.windows import Window

from geoseg.model.meta import check_tiling

BlendMode = Literal["hann", "gaussian", "none"]


def axis_starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Tile start offsets along one axis: a regular stride, the last one shifted inward to end at ``size``."""
    check_tiling(tile, overlap)
    if size <= tile:
        return (0,)
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return tuple(starts)


def block_windows(height: int, width: int, block_height: int, block_width: int | None = None) -> list[Window]:
    """Blocks of ``block_height`` x ``block_width`` px (square by default) covering a raster, row-major.

    The last row and column of blocks are clipped to the raster; blocks never overlap.
    """
    block_width = block_width or block_height
    return [Window(c, r, min(block_width, width - c), min(block_height, height - r))
            for r in range(0, height, block_height) for c in range(0, width, block_width)]


def row_windows(height: int, width: int, rows: int) -> list[Window]:
    """Bands of ``rows`` full-width rows, top to bottom (the last one clipped)."""
    return block_windows(height, width, rows, width)


def grown(window: Window, halo: int, height: int, width: int) -> Window:
    """``window`` grown by ``halo`` px on every side, clipped to a ``height`` x ``width`` raster."""
    r0, c0 = max(0, window.row_off - halo), max(0, window.col_off - halo)
    r1 = min(height, window.row_off + window.height + halo)
    c1 = min(width, window.col_off + window.width + halo)
    return Window(c0, r0, c1 - c0, r1 - r0)


def halo_windows(height: int, width: int, core: int, halo: int) -> Iterator[tuple[Window, Window]]:
    """Blocks of ``core`` px, each with its context: the block grown by ``halo`` px, clipped to the raster.

    A network run on the context and kept on the core sees ``halo`` px around every kept pixel.
    """
    for block in block_windows(height, width, core):
        yield block, grown(block, halo, height, width)


@dataclass(frozen=True)
class Tile:
    """One tile: its position in the grid and its window in the scene (clipped to the scene)."""

    index: int
    row: int
    col: int
    y: int
    x: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


class TileGrid:
    """Tiles covering a ``height`` x ``width`` scene, in canonical row-major order."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, blend: BlendMode = "hann"):
        if height <= 0 or width <= 0:
            raise ValueError(f"scene size must be positive, got {height}x{width}")
        self.height, self.width, self.tile, self.overlap, self.blend = height, width, tile, overlap, blend
        self.ys = axis_starts(height, tile, overlap)
        self.xs = axis_starts(width, tile, overlap)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def tile_at(self, row: int, col: int) -> Tile:
        y, x = self.ys[row], self.xs[col]
        return Tile(row * len(self.xs) + col, row, col, y, x,
                    min(self.tile, self.height - y), min(self.tile, self.width - x))

    def __iter__(self) -> Iterator[Tile]:
        return self.rows(0, len(self.ys))

    def rows(self, first: int, stop: int) -> Iterator[Tile]:
        """The tiles of grid rows ``first`` to ``stop - 1``, in canonical order."""
        for row in range(first, stop):
            for col in range(len(self.xs)):
                yield self.tile_at(row, col)

    def row_end(self, row: int) -> int:
        """First scene row that tiles of grid rows > ``row`` can touch: rows above it are final after ``row``."""
        return self.ys[row + 1] if row + 1 < len(self.ys) else self.height

    def first_touching(self, y: int) -> int:
        """The first grid row whose tiles reach scene row ``y`` or below."""
        return next(row for row, start in enumerate(self.ys) if min(start + self.tile, self.height) > y)

    def col_end(self, col: int) -> int:
        return self.xs[col + 1] if col + 1 < len(self.xs) else self.width

    def weights(self, tile: Tile) -> np.ndarray:
        """The float32 blending window of ``tile`` (its clipped height x width)."""
        wy = _profile(tile.height, tile.y > 0, tile.y + tile.height < self.height, self.overlap, self.blend)
        wx = _profile(tile.width, tile.x > 0, tile.x + tile.width < self.width, self.overlap, self.blend)
        return np.outer(wy, wx)


@dataclass(frozen=True)
class RowPartition:
    """Scene rows ``y0`` to ``y1 - 1`` of a grid, owned by grid rows ``row`` to ``stop - 1``.

    Computing them needs the tiles of grid rows ``first`` to ``stop - 1``: the rows before ``row`` are the
    halo, whose tiles overlap the owned rows (their own final rows belong to the partition above).
    """

    index: int
    first: int
    row: int
    stop: int
    y0: int
    y1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def row_partitions(grid: TileGrid, count: int) -> list[RowPartition]:
    """``count`` bands of whole grid rows (at most one per row), as even as the rows allow, top to bottom.

    Each owns the scene rows its grid rows finalise in :class:`~geoseg.inference.stitch.StripAccumulator`
    (``ys[row]`` up to ``row_end(stop - 1)``), so the parts tile the scene exactly, and each pixel sums the
    same tiles in the same order as in one pass over the whole grid: the parts are byte-identical to it.
    """
    if count < 1:
        raise ValueError(f"partitions must be 1 or more, got {count}")
    rows = len(grid.ys)
    count = min(count, rows)
    bounds = [round(i * rows / count) for i in range(count + 1)]
    parts = []
    for index, (row, stop) in enumerate(zip(bounds, bounds[1:])):
        y0 = grid.ys[row]
        parts.append(RowPartition(index, grid.first_touching(y0), row, stop, y0, grid.row_end(stop - 1)))
    return parts


@functools.lru_cache(maxsize=64)
def _profile(length: int, before: bool, after: bool, overlap: int, blend: BlendMode) -> np.ndarray:
    centres = np.arange(length, dtype=np.float64) + 0.5
    if blend == "gaussian":
        return _gaussian(centres, length, before, after)
    margin = overlap // 2 if blend == "none" else overlap // 4
    ramp = max(overlap - 2 * margin, 0)
    w = np.ones(length, dtype=np.float64)
    if before:
        w = np.minimum(w, _ramp(centres, margin, ramp))
    if after:
        w = np.minimum(w, _ramp(length - centres, margin, ramp))
    return _frozen(w)


def _ramp(distance: np.ndarray, margin: int, ramp: int) -> np.ndarray:
    """0 up to ``margin`` px from the edge, then sin² up to 1 over ``ramp`` px (a step when ramp is 0)."""
    if ramp == 0:
        return (distance > margin).astype(np.float64)
    t = np.clip((distance - margin) / ramp, 0.0, 1.0)
    return np.sin(0.5 * np.pi * t) ** 2


def _gaussian(centres: np.ndarray, length: int, before: bool, after: bool) -> np.ndarray:
    """nnU-Net's importance profile (sigma = length/8), flat towards sides that lie on the scene border."""
    offset = centres - length / 2
    if not before:
        offset = np.maximum(offset, 0)
    if not after:
        offset = np.minimum(offset, 0)
    sigma = length / 8
    return _frozen(np.maximum(np.exp(-0.5 * (offset / sigma) ** 2), 1e-3))


def _frozen(w: np.ndarray) -> np.ndarray:
    """float32 and read-only: profiles are cached and shared."""
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out
