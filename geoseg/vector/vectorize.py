"""Class map -> land-cover polygons, block by block, merged across block borders, in any OGR format.

The pipeline: read a block (sieved with a halo when a minimum area is asked) -> GDAL polygonize in pixel
coordinates -> merge pieces across block seams (:mod:`geoseg.vector.polygonize`) -> map coordinates, area in m²,
class names -> stream to the output under a temporary name, renamed when complete.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import shapely
from rasterio.io import DatasetReader

from geoseg.vector.areas import area_m2, pixel_area_m2, to_map, to_wgs84
from geoseg.vector.workers import BlockJob, block_cache_mb, default_workers, polygonized_blocks
from geoseg.io.legend import NODATA_TAG, ClassScheme
from geoseg.errors import InputFileError, ParameterError
from geoseg.io.outputs import SHAPEFILE_PARTS, atomic_output, check_writable
from geoseg.inference.tiling import block_windows
from geoseg.io.rasters import gdal_env, open_raster
from geoseg.vector.polygonize import ValueFilter, merge_block_polygons
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import VectorizeSummary
from geoseg.vector.sieve import sieve_pixels
from geoseg.vector.config import VectorizeConfig
from geoseg.vector.formats import FeatureBatch, format_of, write_features


def vectorize(
    src: str | os.PathLike | DatasetReader,
    dst: str | os.PathLike,
    *,
    fmt: str | None = None,
    layer: str | None = None,
    min_area: float | None = None,
    min_area_unit: Literal["map", "pixels"] = "map",
    simplify: float | None = None,
    dissolve: bool = False,
    classes: Sequence[str | int] | None = None,
    block_size: int = 2048,
    workers: int | None = None,
    nodata: int | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    config: VectorizeConfig | None = None,
    scheduler: Any = None,
    local_workers: int | None = None,
) -> VectorizeSummary:
    """Write the polygons of a single-band class map to ``dst`` and return a summary.

    ``fmt`` is the output format (gpkg, shp, geojson, parquet, fgb; default: from the suffix of ``dst``),
    ``layer`` the layer name (default: the stem of ``dst``).
    ``min_area`` removes regions smaller than it (square map units, or pixels with
    ``min_area_unit="pixels"``; for geographic CRSs square metres at the scene centre) by GDAL's sieve.
    ``simplify`` is a tolerance in map units (shapely ``coverage_simplify``, per block with the block frame
    pinned so pieces still meet at seams): neighbours stay edge-matched, no gaps or overlaps, but the
    simplified shapes depend slightly on ``block_size``.
    ``dissolve`` writes one (multi)polygon per class. ``classes`` keeps only these names or ids.
    ``block_size`` is the side in pixels of the processing block, not an output setting: it bounds memory
    and is the unit of parallel work; the polygons are identical whatever it is (without ``simplify``).
    ``workers`` processes polygonize blocks in parallel (default: one per core); the output is the same
    whatever their number.
    ``nodata`` is a class value not to vectorize when the map does not declare one (e.g. 0 for a label
    raster's background).
    The options can come as one validated :class:`VectorizeConfig` (``config``) instead of keywords.
    ``scheduler`` (a Dask scheduler address or Client) or ``local_workers`` (a LocalCluster of that many
    processes) polygonize the blocks as Dask tasks instead of ``workers``; this process still merges the
    seams and writes, so the polygons are the same (``pip install 'geoseg[distributed]'``).
    """
    t0 = time.perf_counter()
    config = _config(config, fmt=fmt, layer=layer, min_area=min_area, min_area_unit=min_area_unit,
                     simplify=simplify, dissolve=dissolve, classes=classes, block_size=block_size, workers=workers,
                     nodata=nodata)
    fmt = config.fmt or format_of(dst)
    check_writable(dst, overwrite, inputs=[src])
    reporter = reporter or NullReporter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env())
        ds = stack.enter_context(_open_class_map(src))
        scheme = ClassScheme.from_dataset(ds)
        names = scheme.names() if scheme else {}
        nodata = config.nodata if config.nodata is not None else _nodata(ds)
        keep = _class_ids(config.classes, names, ds.name)
        crs = ds.crs
        if fmt == "geojson" and crs is None:
            raise ParameterError("fmt", fmt, f"{ds.name} has no CRS, and RFC 7946 GeoJSON is in WGS84; "
                                 "choose another format or assign a CRS to the class map")
        windows = block_windows(ds.height, ds.width, config.block_size)
        job = _block_job(ds, config, nodata, keep)
        reporter.start(len(windows), unit="blocks", megapixels=ds.height * ds.width / 1e6)
        # Closed here, not by the garbage collector at exit: an interrupted run must stop its worker pool
        # while the interpreter still works (else a traceback from the pool's teardown).
        client = (stack.enter_context(_dask_client(scheduler, local_workers, len(windows)))
                  if scheduler is not None or local_workers is not None else None)
        blocks = stack.enter_context(contextlib.closing(
            polygonized_blocks(ds, windows, job, config.workers or default_workers(len(windows)), client)))
        polygons = merge_block_polygons(blocks, ds.height, ds.width, config.block_size, on_block=reporter.advance)
        totals: dict[str, float] = {}
        counter = [0]
        batches = _features(polygons, ds, names, fmt, totals, counter)
        if config.dissolve:
            batches = _dissolve(batches, counter)
        out_crs = "EPSG:4326" if fmt == "geojson" else (crs.to_wkt() if crs is not None else None)
        layer_name = config.layer or Path(dst).stem
        # The block cache for blocks read in this process (no workers; each worker sets its own). An
        # environment entered in the block generator itself would be torn down out of order with rasterio's.
        with (gdal_env(job.cache_mb),
              atomic_output(dst, overwrite, sidecars=SHAPEFILE_PARTS if fmt == "shp" else (), inputs=[src]) as tmp):
            write_features(batches, tmp, fmt, layer_name, out_crs, "MultiPolygon" if config.dissolve else "Polygon")
    summary = VectorizeSummary(output=str(dst), format=fmt, layer=None if fmt == "parquet" else layer_name,
                               n_polygons=counter[0], area_m2_per_class=dict(sorted(totals.items())),
                               crs="EPSG:4326" if fmt == "geojson" else (crs.to_string() if crs else None),
                               elapsed_s=round(time.perf_counter() - t0, 3))
    reporter.done(**summary.model_dump())
    return summary


def _dask_client(scheduler: Any, local_workers: int | None, blocks: int) -> Any:
    """A Client for the run; imported here: the Dask plumbing brings the inference layer (torch) along."""
    from geoseg.inference.distributed import require_distributed, run_client

    return run_client(require_distributed(), scheduler, local_workers, blocks)


def _config(config: VectorizeConfig | None, **options: Any) -> VectorizeConfig:
    """``config``, or the options given as keywords; both at once would leave one of them unused."""
    given = VectorizeConfig(**options)
    if config is None:
        return given
    changed = tuple(name for name, value in given if value != VectorizeConfig.model_fields[name].default)
    if changed:
        raise ParameterError("config", changed, "give these options inside the config or as keywords, not both")
    return config


def _block_job(ds: DatasetReader, config: VectorizeConfig, nodata: int | None, keep: np.ndarray | None
               ) -> BlockJob:
    """What each block's reader needs: the sieve threshold and simplification tolerance in pixels."""
    crs = ds.crs
    pixel_area = (pixel_area_m2(ds.transform, crs, ds.height, ds.width) if crs is not None and crs.is_geographic
                  else abs(ds.transform.determinant))
    size = sieve_pixels(config.min_area, config.min_area_unit, pixel_area)
    if size >= ds.width * ds.height:
        unit = "px" if config.min_area_unit == "pixels" else "map units²"
        raise ParameterError("min_area", config.min_area, f"{unit} is at least the whole class map ({ds.name}: "
                             f"{ds.width * ds.height} px); every region would be merged away, so use a smaller "
                             "minimum mapping unit")
    simplify_px = config.simplify / abs(ds.transform.determinant) ** 0.5 if config.simplify else None
    return BlockJob(ds.name, nodata, size, ValueFilter(nodata, keep), simplify_px,
                    block_cache_mb(ds, config.block_size, size))


@contextlib.contextmanager
def _open_class_map(src: str | os.PathLike | DatasetReader) -> Iterator[DatasetReader]:
    """Open (or take) a raster and check it is a single-band integer class map."""
    if isinstance(src, DatasetReader):
        _check_class_map(src)
        yield src
        return
    with open_raster(src) as ds:
        _check_class_map(ds)
        yield ds


def _check_class_map(ds: DatasetReader) -> None:
    if ds.count != 1:
        raise InputFileError(f"{ds.name}: has {ds.count} bands; vectorize needs a single-band class map "
                             "(the output of geoseg predict, or a label raster)")
    if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise InputFileError(f"{ds.name}: is {ds.dtypes[0]}, not integer class ids; vectorize a class map "
                             "(e.g. from geoseg predict), not probabilities or imagery")


def _nodata(ds: DatasetReader) -> int | None:
    """The value not to vectorize: the band's nodata, else geoseg's nodata tag, else none."""
    if ds.nodata is not None:
        return int(ds.nodata)
    tag = ds.tags().get(NODATA_TAG)
    return int(tag) if tag is not None else None


def _class_ids(classes: Sequence[str | int] | None, names: dict[int, str], source: str) -> np.ndarray | None:
    """Class ids for names or ids; unknown names are refused with the list of known ones."""
    if classes is None:
        return None
    by_name = {name.lower(): cid for cid, name in names.items()}
    ids = []
    for item in classes:
        text = str(item).strip()
        if text.lower() in by_name:
            ids.append(by_name[text.lower()])
        elif text.lstrip("-").isdigit():
            ids.append(int(text))
        elif text.lower().startswith("class_") and text[6:].isdigit():
            ids.append(int(text[6:]))
        else:
            known = ", ".join(names.values()) or "none: the raster has no class names, use ids"
            raise ParameterError("classes", text, f"not a class of {source}; known classes: {known}")
    return np.array(sorted(set(ids)), dtype=np.int64)


def _features(polygons: Iterator, ds: DatasetReader, names: dict[int, str], fmt: str,
              totals: dict[str, float], counter: list[int]) -> Iterator[FeatureBatch]:
    """Pixel-space polygons -> output features (map coordinates, m², class names), one batch per block."""
    for batch in polygons:
        if not len(batch.polygons):
            continue
        polys = batch.polygons.with_coords(lambda xy: to_map(xy, ds.transform))
        areas = area_m2(batch.polygons, polys, ds.transform, ds.crs)
        if fmt == "geojson":
            polys = polys.with_coords(lambda xy: to_wgs84(xy, ds.crs))
        ids, which = np.unique(batch.values, return_inverse=True)      # per class, not per polygon
        labels = np.array([names.get(int(v), f"class_{v}") for v in ids], dtype=object)
        for label, area in zip(labels, np.bincount(which, weights=areas, minlength=len(ids))):
            totals[label] = totals.get(label, 0.0) + float(area)
        class_names = labels[which]
        counter[0] += len(polys)
        yield FeatureBatch(polys.to_wkb(), batch.values, class_names, areas)


def _dissolve(batches: Iterator[FeatureBatch], counter: list[int]) -> Iterator[FeatureBatch]:
    """One MultiPolygon per class. Polygons of a class never share an edge (they would be one region),
    so collecting them is their union; memory holds the output, which is unavoidable for one feature."""
    parts: dict[int, list[np.ndarray]] = {}
    area: dict[int, float] = {}
    label: dict[int, str] = {}
    for batch in batches:
        geoms = shapely.from_wkb(batch.wkb.to_numpy(zero_copy_only=False))
        for cid in np.unique(batch.class_id):
            sel = batch.class_id == cid
            parts.setdefault(int(cid), []).append(geoms[sel])
            area[int(cid)] = area.get(int(cid), 0.0) + float(batch.area_m2[sel].sum())
            label[int(cid)] = batch.class_name[sel][0]
    ids = sorted(parts)
    counter[0] = len(ids)
    if ids:
        geoms = np.array([shapely.multipolygons(np.concatenate(parts[c])) for c in ids], dtype=object)
        yield FeatureBatch(pa.array(shapely.to_wkb(geoms), pa.binary()), np.array(ids),
                           np.array([label[c] for c in ids], dtype=object), np.array([area[c] for c in ids]))

