"""The one read path from a scene to model input: window -> validity -> normalise -> pad to the tile.

Prediction, int8 calibration and the pipeline benchmark read tiles through :class:`TileSource`, so the
model sees the same pixels whoever asks: the bundle's bands, the nodata rules of
:func:`~geoseg.io.rasters.read_tile`, the bundle's normalisation (:class:`~geoseg.model.normalise.Normaliser`;
a scene-normalised bundle's comes from the scene's own sampled statistics) and mirror padding (:func:`mirror_pad`). Training validation runs on scenes already normalised in memory,
so it shares only the padding.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.inference.tiling import Tile
from geoseg.io.rasters import read_tile
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
