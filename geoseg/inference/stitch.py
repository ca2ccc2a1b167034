"""Blend overlapping tile predictions into final per-pixel probabilities in bounded memory.

Tiles must arrive in the grid's row-major order (skipped tiles too, as ``None``). The accumulator keeps
``sum(w·p)`` and ``sum(w)`` in float32 only where pixels can still receive contributions: one column chunk
per tile currently open in the grid row, plus a carry strip (the vertical overlap, ``overlap`` rows high)
for the next grid row. A region is handed to ``on_final`` the moment no later tile can touch it.

Memory is ``O(classes · (tile² + overlap · width))`` — independent of scene height, linear in width only
through the thin carry strip — and because each pixel sums its tiles in the canonical order, the result
does not depend on batch size, output block size or how work is split.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from geoseg.inference.tiling import Tile, TileGrid


@dataclass
class Region:
    """A rectangle of the scene with its accumulated sums and validity."""

    y: int
    x: int
    weighted: np.ndarray  # (classes, h, w) float32: sum of w·p
    weight: np.ndarray  # (h, w) float32: sum of w
    valid: np.ndarray  # (h, w) bool: input had data

    def split_rows(self, at: int) -> tuple["Region", "Region"]:
        """The rows above scene row ``at`` and the rows from ``at`` on."""
        k = at - self.y
        top = Region(self.y, self.x, self.weighted[:, :k], self.weight[:k], self.valid[:k])
        rest = Region(at, self.x, self.weighted[:, k:].copy(), self.weight[k:].copy(), self.valid[k:].copy())
        return top, rest


FinalCallback = Callable[[Region], None]


class StripAccumulator:
    """Accumulates tiles of one :class:`TileGrid` and emits final regions through ``on_final``."""

    def __init__(self, grid: TileGrid, num_classes: int, on_final: FinalCallback, first_row: int = 0):
        """``first_row``: tiles start at this grid row (a partition's halo); rows above it get no carry, so
        only regions below the tiles of ``first_row - 1`` are complete (see ``row_partitions``)."""
        self.grid = grid
        self.num_classes = num_classes
        self.on_final = on_final
        self.row = -1
        self.next_index = first_row * len(grid.xs)
        self.chunks: dict[int, Region] = {}
        self.carry: dict[int, Region] = {}

    def add(self, tile: Tile, probabilities: np.ndarray | None, valid: np.ndarray) -> None:
        """Add one tile's probabilities (classes, h, w), or ``None`` for a skipped all-nodata tile."""
        if tile.index != self.next_index:
            raise ValueError(f"tiles must arrive in grid order: expected {self.next_index}, got {tile.index}")
        self.next_index += 1
        if tile.row != self.row:
            self.row = tile.row
            self.chunks = {}
        last_col = self._last_chunk(tile)
        weights = self.grid.weights(tile) if probabilities is not None else None
        for col in range(tile.col, last_col + 1):
            chunk = self._chunk(col, tile.height)
            x0 = self.grid.xs[col] - tile.x
            x1 = min(self.grid.col_end(col), tile.x + tile.width) - tile.x
            chunk.valid[:, :x1 - x0] |= valid[:, x0:x1]
            if probabilities is not None and weights is not None:
                w = weights[:, x0:x1]
                chunk.weighted[:, :, :x1 - x0] += probabilities[:, :, x0:x1] * w
                chunk.weight[:, :x1 - x0] += w
        self._close_chunk(tile.col)

    def _last_chunk(self, tile: Tile) -> int:
        end = tile.x + tile.width
        col = tile.col
        while col + 1 < len(self.grid.xs) and self.grid.xs[col + 1] < end:
            col += 1
        return col

    def _chunk(self, col: int, band_height: int) -> Region:
        if col not in self.chunks:
            y, x = self.grid.ys[self.row], self.grid.xs[col]
            width = self.grid.col_end(col) - x
            chunk = Region(y, x, np.zeros((self.num_classes, band_height, width), np.float32),
                           np.zeros((band_height, width), np.float32), np.zeros((band_height, width), bool))
            carried = self.carry.pop(col, None)
            if carried is not None:
                h = carried.weight.shape[0]
                chunk.weighted[:, :h] += carried.weighted
                chunk.weight[:h] += carried.weight
                chunk.valid[:h] |= carried.valid
            self.chunks[col] = chunk
        return self.chunks[col]

    def _close_chunk(self, col: int) -> None:
        """No later tile of this grid row touches chunk ``col``: emit its final rows, carry the rest."""
        chunk = self.chunks.pop(col)
        end = self.grid.row_end(self.row)
        if end >= chunk.y + chunk.weight.shape[0]:
            self.on_final(chunk)
            return
        top, rest = chunk.split_rows(end)
        self.on_final(top)
        self.carry[col] = rest

    def finished(self) -> bool:
        return self.next_index == len(self.grid) and not self.chunks and not self.carry
