"""Rasters in: open and describe scenes, read windows with their validity mask, and the GDAL environment.

GDAL settings that matter for windowed reads of big compressed GeoTIFFs (block cache) are applied by
:func:`gdal_env`; every reader and writer runs inside it.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from pydantic import BaseModel
from rasterio.errors import NodataShadowWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.errors import InputFileError, innermost_reason

DEFAULT_CACHE_MB = 256
MIN_CACHE_MB, MAX_CACHE_MB = 64, 1024


def gdal_env(cache_mb: int | None = None, threads: int | str = "ALL_CPUS") -> rasterio.Env:
    """GDAL settings for our reads and writes; ``GEOSEG_GDAL_CACHEMAX`` (MB) overrides the block cache size.

    ``threads`` decode compressed blocks; worker processes pass 1: they are the parallelism, and a forked
    worker that used the thread pool its parent had started would wait forever on threads fork did not copy.
    """
    override = os.environ.get("GEOSEG_GDAL_CACHEMAX")
    mb = int(override) if override else (cache_mb or DEFAULT_CACHE_MB)
    return rasterio.Env(GDAL_CACHEMAX=mb * 1024 * 1024, GDAL_NUM_THREADS=str(threads))


def streaming_cache_mb(dataset: rasterio.DatasetReader, tile: int, output_block: int, output_bands: int) -> int:
    """A GDAL block cache that holds one pass's working set and no more.

    Reading a row of tiles touches up to ``tile + source block height`` rows of every band; writing keeps
    two rows of output blocks dirty. A bigger cache only hoards blocks (memory would then grow with the
    scene until the cap); a smaller one decodes compressed blocks twice.
    """
    block_h = dataset.block_shapes[0][0]
    itemsize = np.dtype(dataset.dtypes[0]).itemsize
    source = dataset.width * (tile + block_h) * dataset.count * itemsize
    output = 2 * output_block * dataset.width * output_bands
    return int(min(MAX_CACHE_MB, max(MIN_CACHE_MB, 1.25 * (source + output) / 2**20)))


def is_gdal_path(path: str | os.PathLike) -> bool:
    """A GDAL virtual path or URL (``/vsizip/…``, ``/vsicurl/https://…``, ``zip://…!…``, ``s3://…``): no
    local file to check, and never to be normalised (``Path`` collapses the ``//`` they contain)."""
    text = os.fspath(path)
    return text.startswith("/vsi") or "://" in text or text.startswith(("zip:", "tar:", "gzip:"))


def open_raster(path: str | os.PathLike) -> rasterio.DatasetReader:
    """Open a raster (a file, or any GDAL virtual path) or raise a one-line :class:`InputFileError`."""
    text = os.fspath(path)
    if not is_gdal_path(text) and not Path(text).exists():
        raise InputFileError(f"{text}: file not found; check the path")
    try:
        return rasterio.open(text)
    except RasterioIOError as err:
        raise InputFileError(f"{text}: not a raster GDAL can read ({str(err).splitlines()[0]}); "
                             "pass a GeoTIFF or another GDAL raster") from err


class SceneInfo(BaseModel):
    """What ``geoseg info SCENE`` prints and what fitting a model to a scene looks at."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    res: tuple[float, float]
    gsd_m: float | None
    nodata: float | None
    band_names: list[str | None]
    transform: tuple[float, ...]


def describe(dataset: rasterio.DatasetReader) -> SceneInfo:
    return SceneInfo(path=str(dataset.name), width=dataset.width, height=dataset.height, count=dataset.count,
                     dtype=dataset.dtypes[0], crs=dataset.crs.to_string() if dataset.crs else None,
                     res=dataset.res, gsd_m=ground_sample_distance(dataset), nodata=dataset.nodata,
                     band_names=list(dataset.descriptions), transform=tuple(dataset.transform)[:6])


def ground_sample_distance(dataset: rasterio.DatasetReader) -> float | None:
    """Pixel size in metres (geographic CRSs converted at the scene centre), or None without a CRS."""
    crs = dataset.crs
    if crs is None:
        return None
    xres, yres = dataset.res
    if crs.is_geographic:
        _, centre_y = dataset.transform @ (dataset.width / 2, dataset.height / 2)   # rotated grids too
        lat = math.radians(centre_y)
        metres_per_degree = 111_320.0
        return float(math.sqrt(xres * math.cos(lat) * yres) * metres_per_degree)
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(math.sqrt(xres * yres) * factor)


def valid_mask(dataset: rasterio.DatasetReader, window: Window, indexes: Sequence[int] | None = None
               ) -> np.ndarray:
    """Where every band in ``indexes`` (default: all) is valid by its own GDAL mask (nodata value, mask band
    or alpha), as bool.

    Per band, not GDAL's dataset mask: that one calls a pixel valid when *any* band is, so in a stack whose
    bands have different footprints (another sensor's band, SLC-off gaps) the fill value of one band would be
    read as data. The price, measured on the stretched 8-bit Landsat and Landsat 7 scenes in ../shared that
    declare nodata 0: 32-710 pixels (0.003-0.06 %) where one band is really 0 become nodata, as that
    declaration says.
    """
    bands = list(indexes) if indexes is not None else list(dataset.indexes)
    return band_masks(dataset, bands, window).all(axis=0)


def band_masks(dataset: rasterio.DatasetReader, bands: Sequence[int], window: Window) -> np.ndarray:
    """(bands, h, w) bool: GDAL's mask of each band. When a file has both a nodata value and an alpha band
    (NAIP often does), GDAL uses the nodata value; rasterio's warning about that says nothing the user can
    act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        return dataset.read_masks(list(bands), window=window) > 0


def damaged(path: object, where: str, err: BaseException) -> InputFileError:
    """The error for raster data GDAL cannot decode, with GDAL's own reason."""
    return InputFileError(f"{path}: cannot decode {where} ({innermost_reason(err)}); the file is damaged or "
                          "truncated: check it with gdalinfo -checksum")


#: Windows sampled to look at a scene's values, and their side.
SAMPLE_GRID, SAMPLE_SIDE = 4, 256
#: A value in every band of this share of sampled pixels, at an extreme of the type, looks like a fill.
SUSPICIOUS_FILL_SHARE = 0.05


def sample_windows(height: int, width: int, grid: int = SAMPLE_GRID, side: int = SAMPLE_SIDE
                   ) -> list[Window]:
    """A ``grid`` x ``grid`` lattice of square windows spread over the raster, row-major: cheap whatever the
    scene's size, and drawn from all of it (the value check of a fit, the fill hints of ``info``)."""
    side = min(side, height, width)
    rows = sorted({int(r) for r in np.linspace(0, height - side, grid)})
    cols = sorted({int(c) for c in np.linspace(0, width - side, grid)})
    return [Window(c, r, side, side) for r in rows for c in cols]


def fill_hints(dataset: rasterio.DatasetReader, fill: float | None = None) -> list[str]:
    """Fill values the file does not declare (nor the user, as ``fill``), from :func:`sample_windows`: a
    black (or saturated) frame in every band, or NaN beside another declared nodata. Used as data, they
    become a class."""
    windows = [dataset.read(window=w, out_dtype="float64") for w in sample_windows(dataset.height, dataset.width)]
    data = np.concatenate([w.reshape(dataset.count, -1) for w in windows], axis=1)
    hints = []
    dtype = np.dtype(dataset.dtypes[0])
    extremes = [0.0] + ([float(np.iinfo(dtype).max)] if dtype.kind in "ui" else [])
    for value in extremes:
        share = float(np.mean((data == value).all(axis=0)))
        if share >= SUSPICIOUS_FILL_SHARE and value not in (dataset.nodata, fill):
            hints.append(f"{share:.0%} of sampled pixels are {value:g} in every band and the file declares "
                         f"{'no nodata' if dataset.nodata is None else f'nodata {dataset.nodata:g}'}: a fill "
                         f"value? pass --nodata {value:g} (nodata={value:g}) so it is not classified")
    declared_nan = any(v is not None and np.isnan(v) for v in (dataset.nodata, fill))
    if dtype.kind == "f" and np.isnan(data).any() and not declared_nan:
        hints.append("NaN pixels are present although the file declares "
                     f"{'no nodata' if dataset.nodata is None else f'nodata {dataset.nodata:g}'}; NaN is always "
                     "treated as nodata by geoseg")
    return hints


def sampled_band_values(dataset: rasterio.DatasetReader, fill: float | None = None) -> list[dict[str, object]]:
    """Per band, from :func:`sample_windows`: the share of valid pixels and the 2-98 % range of the valid
    values (what a model's value check compares), honouring the file's masks and a declared ``fill``."""
    bands = list(dataset.indexes)
    pixels = []
    for w in sample_windows(dataset.height, dataset.width):
        data = dataset.read(bands, window=w, out_dtype="float64")
        valid = band_masks(dataset, bands, w) & ~np.isnan(data)
        if fill is not None and not np.isnan(fill):
            valid &= data != fill
        pixels.append((data.reshape(len(bands), -1), valid.reshape(len(bands), -1)))
    data = np.concatenate([d for d, _ in pixels], axis=1)
    valid = np.concatenate([v for _, v in pixels], axis=1)
    summary = []
    for i, band in enumerate(bands):
        values = data[i][valid[i]]
        low, high = (float(v) for v in np.percentile(values, [2, 98])) if values.size else (None, None)
        summary.append({"band": band, "name": dataset.descriptions[band - 1],
                        "valid_share": float(valid[i].mean()), "p2": low, "p98": high})
    return summary


def read_tile(dataset: rasterio.DatasetReader, indexes: Sequence[int], y: int, x: int, height: int,
              width: int, nodata: float | None = None, fill: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (bands, h, w) as float32 and the validity mask (h, w) of one window.

    A pixel is valid only where every band read is valid (:func:`valid_mask`): not NaN and not the fill
    value of its band, whether the file declares it (nodata, mask band or alpha), the bundle does
    (``nodata``, for files without one) or the user does (``fill``, whatever the file says).
    """
    window = Window(x, y, width, height)
    try:
        data = dataset.read(list(indexes), window=window, out_dtype="float32")
        valid = valid_mask(dataset, window, indexes)
    except RasterioIOError as err:
        raise damaged(dataset.name, f"rows {y}..{y + height}, columns {x}..{x + width}", err) from err
    if np.issubdtype(np.dtype(dataset.dtypes[0]), np.floating):
        valid &= ~np.isnan(data).any(axis=0)
    if nodata is not None and dataset.nodata is None:
        valid &= ~(data == nodata).any(axis=0)
    if fill is not None and not np.isnan(fill):      # NaN is already out
        valid &= ~(data == fill).any(axis=0)
    return data, valid


__all__ = ["SceneInfo", "describe",
           "gdal_env", "ground_sample_distance", "streaming_cache_mb", "open_raster", "read_tile",
           "band_masks", "sampled_band_values", "valid_mask"]
