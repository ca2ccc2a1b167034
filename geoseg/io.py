"""Rasters in and out: open and describe scenes, read tile windows with their validity mask, write class maps.

GDAL settings that matter for windowed reads of big compressed GeoTIFFs (block cache) are applied by
:func:`gdal_env`; every reader and writer runs inside it.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pydantic import BaseModel
import rasterio.shutil
from rasterio.errors import NodataShadowWarning, RasterioIOError
from rasterio.windows import Window

from geoseg.bundle import BundleMeta
from geoseg.classes import ClassScheme
from geoseg.errors import InputError

DEFAULT_CACHE_MB = 256
MIN_CACHE_MB, MAX_CACHE_MB = 64, 1024


def gdal_env(cache_mb: int | None = None) -> rasterio.Env:
    """GDAL settings for our reads and writes; ``GEOSEG_GDAL_CACHEMAX`` (MB) overrides the block cache size."""
    override = os.environ.get("GEOSEG_GDAL_CACHEMAX")
    mb = int(override) if override else (cache_mb or DEFAULT_CACHE_MB)
    return rasterio.Env(GDAL_CACHEMAX=mb * 1024 * 1024, GDAL_NUM_THREADS="ALL_CPUS")


def streaming_cache_mb(dataset: rasterio.DatasetReader, tile: int, block_size: int, output_bands: int) -> int:
    """A GDAL block cache that holds one pass's working set and no more.

    Reading a row of tiles touches up to ``tile + source block height`` rows of every band; writing keeps
    two rows of output blocks dirty. A bigger cache only hoards blocks (memory would then grow with the
    scene until the cap); a smaller one decodes compressed blocks twice.
    """
    block_h = dataset.block_shapes[0][0]
    itemsize = np.dtype(dataset.dtypes[0]).itemsize
    source = dataset.width * (tile + block_h) * dataset.count * itemsize
    output = 2 * block_size * dataset.width * output_bands
    return int(min(MAX_CACHE_MB, max(MIN_CACHE_MB, 1.25 * (source + output) / 2**20)))


def open_raster(path: str | os.PathLike) -> rasterio.DatasetReader:
    """Open a raster or raise a one-line :class:`InputError` that names the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise InputError(f"{path}: not a raster GDAL can read ({str(err).splitlines()[0]}); "
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
        lat = math.radians((dataset.bounds.top + dataset.bounds.bottom) / 2)
        metres_per_degree = 111_320.0
        return float(math.sqrt(xres * math.cos(lat) * yres) * metres_per_degree)
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(math.sqrt(xres * yres) * factor)


class FitReport(BaseModel):
    """Whether a model can run on a scene: problems refuse it, warnings are printed."""

    ok: bool
    band_indexes: list[int]
    problems: list[str]
    warnings: list[str]


def check_fit(dataset: rasterio.DatasetReader, meta: BundleMeta, bands: Sequence[int] | None = None) -> FitReport:
    """Match scene bands to the bundle's (explicit 1-based ``bands``, band names, or all in order)."""
    problems: list[str] = []
    warnings: list[str] = []
    wanted = [b.name for b in meta.bands]
    indexes = list(bands) if bands else _bands_by_name(dataset, wanted)
    if indexes is None:
        if dataset.count == len(wanted):
            indexes = list(range(1, dataset.count + 1))
        else:
            indexes = []
            problems.append(f"the scene has {dataset.count} bands, the model expects {len(wanted)} "
                            f"({', '.join(wanted)}); pass --bands with {len(wanted)} band numbers")
    if indexes:
        if len(indexes) != len(wanted):
            problems.append(f"--bands names {len(indexes)} bands, the model expects {len(wanted)} ({', '.join(wanted)})")
        bad = [i for i in indexes if not 1 <= i <= dataset.count]
        if bad:
            problems.append(f"band numbers {bad} are outside 1..{dataset.count}")
    if dataset.dtypes[0] != meta.input_dtype and meta.input_dtype != "float32":
        warnings.append(f"scene is {dataset.dtypes[0]}, the model was trained on {meta.input_dtype}: "
                        "values must be on the same scale")
    gsd = ground_sample_distance(dataset)
    if meta.gsd and gsd:
        ratio = gsd / meta.gsd
        if ratio > 4 or ratio < 0.25:
            problems.append(f"scene resolution {gsd:.2f} m is far from the model's {meta.gsd:.2f} m; "
                            "resample the scene or use a model trained at this resolution")
        elif ratio > 1.5 or ratio < 1 / 1.5:
            warnings.append(f"scene resolution {gsd:.2f} m differs from the model's {meta.gsd:.2f} m")
    if dataset.crs is None:
        warnings.append("the scene has no CRS: the output will not be georeferenced")
    return FitReport(ok=not problems, band_indexes=indexes, problems=problems, warnings=warnings)


def _bands_by_name(dataset: rasterio.DatasetReader, wanted: list[str]) -> list[int] | None:
    names = [(d or "").lower() for d in dataset.descriptions]
    if all(w.lower() in names for w in wanted):
        return [names.index(w.lower()) + 1 for w in wanted]
    return None


def valid_mask(dataset: rasterio.DatasetReader, window: Window) -> np.ndarray:
    """GDAL's dataset mask as bool. When a file has both a nodata value and an alpha band (NAIP often
    does), GDAL uses the nodata value; rasterio's warning about that says nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        return dataset.dataset_mask(window=window) > 0


def read_tile(dataset: rasterio.DatasetReader, indexes: Sequence[int], y: int, x: int, height: int,
              width: int, nodata: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (bands, h, w) as float32 and the validity mask (h, w) of one window.

    A pixel is invalid where the dataset mask says so (nodata value, mask band or alpha), where any
    band is NaN, or where every band equals ``nodata`` (the bundle's input nodata, for files without one).
    """
    window = Window(x, y, width, height)
    data = dataset.read(list(indexes), window=window, out_dtype="float32")
    valid = valid_mask(dataset, window)
    if np.issubdtype(np.dtype(dataset.dtypes[0]), np.floating):
        valid &= ~np.isnan(data).any(axis=0)
    if nodata is not None and dataset.nodata is None:
        valid &= ~(data == nodata).all(axis=0)
    return data, valid


class ClassMapWriter:
    """Writes a uint8 class map (and optionally uint8 probabilities) window by window, then a COG.

    Windows go into a tiled DEFLATE GeoTIFF beside the target; ``finish`` converts it to a Cloud Optimized
    GeoTIFF with mode-resampled overviews and the legend (colour table, class names) embedded.
    """

    def __init__(self, tmp_path: Path, profile: dict[str, Any], scheme: ClassScheme, block_size: int,
                 count: int = 1, dtype: str = "uint8", band_names: Sequence[str] | None = None,
                 legend: bool = True, nodata: int | None = None):
        self.tmp_path = tmp_path
        self.stage_path = tmp_path.with_name(tmp_path.name + ".stage.tif")
        self.scheme = scheme
        self.legend = legend
        block = max(16, block_size // 16 * 16)
        self.block = block
        creation = dict(driver="GTiff", width=profile["width"], height=profile["height"], count=count,
                        dtype=dtype, crs=profile.get("crs"), transform=profile["transform"], tiled=True,
                        blockxsize=block, blockysize=block, compress="deflate", predictor=2,
                        nodata=scheme.nodata_id if nodata is None and legend else nodata,
                        BIGTIFF="IF_SAFER")
        self.dataset = rasterio.open(self.stage_path, "w", **creation)
        if legend:
            self.dataset.write_colormap(1, scheme.colormap())
            self.dataset.update_tags(**scheme.to_tags())
            self.dataset.set_band_description(1, "class")
        for i, name in enumerate(band_names or [], start=1):
            self.dataset.set_band_description(i, name)

    def write(self, array: np.ndarray, y: int, x: int) -> None:
        if array.ndim == 2:
            array = array[None]
        self.dataset.write(array, window=Window(x, y, array.shape[2], array.shape[1]))

    def finish(self) -> None:
        """Close the staging file and copy it into a COG at ``tmp_path`` (mode overviews for classes)."""
        self.dataset.close()
        resampling = "MODE" if self.legend else "AVERAGE"
        try:
            rasterio.shutil.copy(self.stage_path, self.tmp_path, driver="COG", COMPRESS="DEFLATE",
                                 PREDICTOR="2", OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER",
                                 BLOCKSIZE=str(max(128, self.block)))
        finally:
            self.stage_path.unlink(missing_ok=True)

    def abort(self) -> None:
        if not self.dataset.closed:
            self.dataset.close()
        self.stage_path.unlink(missing_ok=True)


__all__ = ["ClassMapWriter", "FitReport", "SceneInfo", "check_fit", "describe",
           "gdal_env", "ground_sample_distance", "streaming_cache_mb", "open_raster", "read_tile", "valid_mask"]
