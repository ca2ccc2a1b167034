"""Large benchmark scenes synthesised from real pixels: the Zion Landsat 8 scene mirrored and tiled.

Mirroring keeps every edge continuous, so the result looks like (and compresses like) real imagery.
Written window by window: building a 20k x 20k scene needs little memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from geoseg.inference.tiling import block_windows

ROOT = Path(__file__).resolve().parents[1]
ZION = ROOT / "sample_tiles" / "zion_landsat8_b2345.tif"


def mirrored(source: np.ndarray, y: int, x: int, height: int, width: int) -> np.ndarray:
    """The window (y, x, height, width) of the infinite mirror-tiling of ``source`` (bands, h, w)."""
    _, h, w = source.shape
    rows = np.arange(y, y + height) % (2 * h)
    rows = np.where(rows < h, rows, 2 * h - 1 - rows)
    cols = np.arange(x, x + width) % (2 * w)
    cols = np.where(cols < w, cols, 2 * w - 1 - cols)
    return source[:, rows][:, :, cols]


def synthesise(path: Path, size: int, source: Path = ZION, block: int = 1024) -> Path:
    """A ``size`` x ``size`` tiled DEFLATE GeoTIFF with the source's bands, dtype and CRS, 30 m pixels."""
    if path.exists():
        return path
    with rasterio.open(source) as src:
        pixels = src.read()
        profile = dict(driver="GTiff", width=size, height=size, count=src.count, dtype=src.dtypes[0], crs=src.crs,
                       transform=from_origin(src.bounds.left, src.bounds.top, *src.res), nodata=src.nodata,
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=2,
                       BIGTIFF="YES")
        names = src.descriptions
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as out:
        out.descriptions = names
        for window in block_windows(size, size, block):
            out.write(mirrored(pixels, window.row_off, window.col_off, window.height, window.width), window=window)
    tmp.rename(path)
    return path
