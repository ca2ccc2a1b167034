"""Minimum mapping unit: GDAL's sieve filter applied block by block in bounded memory.

Each block is sieved inside a window grown by a halo of ``size`` pixels and cropped back. A region smaller
than ``size`` pixels spans fewer than ``size`` pixels in each direction, so every small region touching the
block lies wholly in the window and is seen at its true size; a region that reaches the window edge from
the block has at least ``size`` pixels. Which regions are removed is therefore exactly GDAL's whole-scene
decision. The neighbour that receives a removed region is GDAL's choice ("largest neighbour") made on the
window, which can differ from a whole-scene sieve only when two neighbours both extend beyond the halo.
Memory: one window of ``(block + 2 * size)²`` pixels.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from rasterio.features import sieve
from rasterio.io import DatasetReader
from rasterio.windows import Window

from geoseg.errors import InputFileError
from geoseg.vector.polygonize import POLYGONIZE_DTYPES


def sieve_pixels(min_area: float | None, unit: str, pixel_area: float) -> int:
    """GDAL threshold: regions with fewer pixels than this are merged into a neighbour (0: no sieve).

    ``min_area`` is 0 or more (:class:`~geoseg.vector.config.VectorizeConfig` checks it)."""
    if not min_area:
        return 0
    pixels = min_area if unit == "pixels" else min_area / pixel_area
    return max(0, math.ceil(pixels - 1e-9))


def block_reader(ds: DatasetReader, nodata: int | None, size: int) -> Callable[[Window], np.ndarray]:
    """A function reading a window of band 1 as a polygonizable integer array, sieved when ``size > 1``.

    Its reads run in the caller's :func:`~geoseg.io.rasters.gdal_env` (a worker's, or vectorize's)."""
    cast = None if ds.dtypes[0] in POLYGONIZE_DTYPES else np.int32

    def read(win: Window) -> np.ndarray:
        if size <= 1:
            return _as_polygonizable(ds.read(1, window=win), cast, ds.name)
        r0, c0 = max(0, win.row_off - size), max(0, win.col_off - size)
        r1 = min(ds.height, win.row_off + win.height + size)
        c1 = min(ds.width, win.col_off + win.width + size)
        data = _as_polygonizable(ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)), cast, ds.name)
        mask = data != nodata if nodata is not None else None
        sieved = sieve(data, size, mask=mask, connectivity=4)
        return sieved[win.row_off - r0:win.row_off - r0 + win.height, win.col_off - c0:win.col_off - c0 + win.width]

    return read


def _as_polygonizable(data: np.ndarray, cast: type | None, name: str) -> np.ndarray:
    if cast is None:
        return data
    info = np.iinfo(np.int32)
    if data.size and (data.min() < info.min or data.max() > info.max):
        raise InputFileError(f"{name}: class values beyond the 32-bit integer range; rewrite it as uint8/int32")
    return data.astype(cast)
