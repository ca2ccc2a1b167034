"""Objects out: a scene's objects (instance segmentation) as polygons in any vector format geoseg writes, and
optionally as a uint32 raster of object ids.

:class:`ObjectPredictor` drives the tiled engine (:func:`~geoseg.inference.instances.detect_objects`) and
streams each batch of final objects to the writers: one polygon per object with ``instance_id``,
``class_id``, ``class_name``, ``score`` and ``area_m2`` (true area, ellipsoidal for geographic CRSs), in
the output CRS (WGS84 for GeoJSON). Both outputs go to temporary names and are renamed when complete.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from affine import Affine

from geoseg.errors import OutputError, ParameterError
from geoseg.inference.config import DEFAULT_BATCH, PredictorConfig
from geoseg.inference.instances import DetectionStats, SceneObject, detect_objects
from geoseg.inference.tiling import TileGrid
from geoseg.io.cog import DEFAULT_OUTPUT_BLOCK, ClassMapWriter, require_geotiff_name
from geoseg.io.outputs import SHAPEFILE_PARTS, atomic_output, check_writable
from geoseg.io.rasters import gdal_env, open_raster, streaming_cache_mb
from geoseg.model.fit import check_fit
from geoseg.model.instances import InstanceDetector
from geoseg.model.meta import BundleMeta
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import ObjectSummary
from geoseg.vector.areas import area_m2, to_map, to_wgs84
from geoseg.vector.flat import FlatPolygons
from geoseg.vector.polygonize import polygonize_array
from geoseg.vector.formats import OBJECT_SCHEMA, ObjectBatch, format_of, write_features

#: Width in px of the canvas a batch of objects is polygonized on.
CANVAS_WIDTH = 4096


class MetaDetector(InstanceDetector, Protocol):
    """A detector that carries its bundle's metadata (bands, normalisation, classes, tile size)."""

    meta: BundleMeta


def object_polygons(objects: Sequence[SceneObject]) -> FlatPolygons:
    """One polygon per object in scene pixel coordinates (each object is one 4-connected part).

    GDAL polygonizes all of a batch in one call: the objects' masks are packed apart (a pixel between
    neighbours) on a canvas labelled by object, and each polygon is moved back to where its object lies.
    Objects may overlap in the scene (a model's masks can), so they cannot share one scene raster.
    """
    if not objects:
        return FlatPolygons.empty()
    width = max(CANVAS_WIDTH, max(o.mask.shape[1] for o in objects) + 1)
    places, x, y, shelf = [], 0, 0, 0
    for obj in objects:
        h, w = obj.mask.shape
        if x + w > width:
            x, y, shelf = 0, y + shelf + 1, 0
        places.append((y, x))
        x, shelf = x + w + 1, max(shelf, h)
    canvas = np.zeros((y + shelf, width), np.int32)
    for label, (obj, (py, px)) in enumerate(zip(objects, places), start=1):
        h, w = obj.mask.shape
        canvas[py:py + h, px:px + w][obj.mask] = label
    batch = polygonize_array(canvas, canvas > 0, 0, 0)
    order = np.argsort(batch.values, kind="stable")
    if len(order) != len(objects) or not np.array_equal(batch.values[order], np.arange(1, len(objects) + 1)):
        raise RuntimeError("an object's mask is not one 4-connected part")
    polys = batch.polygons.take(order)
    shift = np.array([(o.x - px, o.y - py) for o, (py, px) in zip(objects, places)], np.float64)
    vertices_per = np.diff(polys.ring_offsets)[:, None]
    ring_owner = np.repeat(np.arange(len(objects)), np.diff(polys.polygon_offsets))
    return polys.with_coords(lambda xy: xy + np.repeat(shift[ring_owner], vertices_per[:, 0], axis=0))


class ObjectFeatures:
    """Scene objects -> :class:`ObjectBatch` in the output CRS, numbering objects from 1 and adding up areas."""

    def __init__(self, transform: Affine, crs: Any, names: dict[int, str], fmt: str):
        self.transform, self.crs, self.names, self.fmt = transform, crs, names, fmt
        self.count = 0
        self.per_class: dict[str, int] = {}
        self.area_per_class: dict[str, float] = {}

    def __call__(self, objects: list[SceneObject]) -> ObjectBatch:
        polys_px = object_polygons(objects)
        polys = polys_px.with_coords(lambda xy: to_map(xy, self.transform))
        areas = area_m2(polys_px, polys, self.transform, self.crs)
        if self.fmt == "geojson":
            polys = polys.with_coords(lambda xy: to_wgs84(xy, self.crs))
        ids = np.arange(self.count + 1, self.count + 1 + len(objects), dtype=np.int64)
        self.count += len(objects)
        class_ids = np.array([o.class_id for o in objects], np.int32)
        labels = np.array([self.names.get(int(c), f"class_{c}") for c in class_ids], dtype=object)
        for label, area in zip(labels, areas):
            self.per_class[label] = self.per_class.get(label, 0) + 1
            self.area_per_class[label] = self.area_per_class.get(label, 0.0) + float(area)
        return ObjectBatch(polys.to_wkb(), ids, class_ids, labels, np.array([o.score for o in objects]), areas)


class ObjectPredictor:
    """An instance detector ready to find objects in many scenes, with the engine's settings.

    ``tile`` and ``overlap`` default to the bundle's (choose an overlap larger than the objects: then a
    tile sees each object whole), ``batch_size`` to the device's, ``score_threshold`` to the bundle's.
    """

    def __init__(self, detector: MetaDetector, *, tile: int | None = None, overlap: int | None = None,
                 batch_size: int | None = None, score_threshold: float | None = None):
        self.detector = detector
        self.meta = detector.meta
        device = str(getattr(detector, "device", "cpu")).split(":")[0]
        config = PredictorConfig(tile=tile if tile is not None else self.meta.tile_size,
                                 overlap=overlap if overlap is not None else self.meta.overlap,
                                 batch_size=batch_size or DEFAULT_BATCH.get(device, 1))
        self.tile, self.overlap = int(config.tile), int(config.overlap)  # type: ignore[arg-type]
        self.batch_size = int(config.batch_size)  # type: ignore[arg-type]
        if score_threshold is None:
            score_threshold = self.meta.score_threshold
        if not 0.0 <= score_threshold <= 1.0:
            raise ParameterError("score_threshold", score_threshold, "must be between 0 and 1")
        self.score_threshold = float(score_threshold)

    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, fmt: str | None = None,
                layer: str | None = None, instances_raster: str | os.PathLike | None = None,
                bands: list[int] | None = None, nodata: float | None = None, check_values: bool = True,
                overwrite: bool = False, reporter: Reporter | None = None, pipelined: bool = True,
                repeat_bands: bool = False) -> ObjectSummary:
        """Find the objects of the scene at ``src`` and write them as polygons to ``dst`` (format from the
        suffix, or ``fmt``); ``instances_raster`` also writes a uint32 COG of object ids (0: no object).

        ``bands``, ``nodata`` (a fill value the file does not declare), ``check_values`` and ``repeat_bands``
        mean what they mean for :meth:`~geoseg.inference.predictor.Predictor.predict`.
        """
        reporter = reporter or NullReporter()
        fmt = fmt or format_of(dst)
        check_writable(dst, overwrite, inputs=[src])
        if instances_raster is not None:
            check_writable(instances_raster, overwrite, inputs=[src])
            require_geotiff_name(instances_raster)
            if Path(instances_raster).resolve() == Path(dst).resolve():
                raise OutputError(f"{instances_raster}: the object ids must go to another file than the polygons")
        with gdal_env(), open_raster(src) as dataset:
            fit = check_fit(dataset, self.meta, bands, check_values, fill=nodata, repeat_bands=repeat_bands)
            if not fit.ok:
                raise fit.refusal(f"{src}: model '{self.meta.name}' does not fit")
            for warning in fit.warnings:
                reporter.warn(f"{src}: {warning}")
            if fmt == "geojson" and dataset.crs is None:
                raise ParameterError("fmt", fmt, f"{src} has no CRS, and RFC 7946 GeoJSON is in WGS84; "
                                     "choose another format or assign a CRS to the scene")
            grid = TileGrid(dataset.height, dataset.width, self.tile, self.overlap)
            cache_mb = streaming_cache_mb(dataset, self.tile, DEFAULT_OUTPUT_BLOCK, 1)
            features = ObjectFeatures(dataset.transform, dataset.crs, self.meta.scheme.names(), fmt)
            stats = DetectionStats()
            reporter.start(len(grid), "tiles", megapixels=dataset.width * dataset.height / 1e6)
            objects = detect_objects(self.detector, self.meta, str(dataset.name), (fit.band_indexes, nodata), grid,
                                     self.batch_size, self.score_threshold, cache_mb, stats,
                                     on_tiles=reporter.advance, pipelined=pipelined)
            crs_wkt = "EPSG:4326" if fmt == "geojson" else (dataset.crs.to_wkt() if dataset.crs else None)
            with contextlib.ExitStack() as stack:
                stack.enter_context(gdal_env(cache_mb))
                tmp = stack.enter_context(atomic_output(dst, overwrite, inputs=[src],
                                                        sidecars=SHAPEFILE_PARTS if fmt == "shp" else ()))
                ids = None
                if instances_raster is not None:
                    ids_tmp = stack.enter_context(atomic_output(instances_raster, overwrite, inputs=[src]))
                    ids = _IdWriter(ids_tmp, dataset, self.meta)
                    stack.callback(ids.abort)
                write_features(_batches(objects, features, ids), tmp, fmt, layer or Path(dst).stem, crs_wkt,
                               "Polygon", OBJECT_SCHEMA)
                if ids is not None:
                    ids.finish()
        elapsed = max(stats.elapsed_s, 1e-9)
        summary = ObjectSummary(
            output=str(dst), instances_raster=str(instances_raster) if instances_raster else None, format=fmt,
            width=dataset.width, height=dataset.height, tiles_total=stats.tiles_total, tiles_run=stats.tiles_run,
            tiles_skipped=stats.tiles_total - stats.tiles_run, n_objects=features.count,
            objects_per_class=features.per_class, area_m2_per_class=dict(sorted(features.area_per_class.items())),
            color_per_class={c.name: c.color for c in self.meta.scheme.classes},
            peak_pending_objects=stats.peak_pending, elapsed_s=round(elapsed, 3),
            megapixels_per_s=round(dataset.width * dataset.height / 1e6 / elapsed, 3))
        reporter.done(**summary.model_dump())
        return summary


def _batches(objects: Iterator[list[SceneObject]], features: ObjectFeatures, ids: _IdWriter | None
             ) -> Iterator[ObjectBatch]:
    for batch in objects:
        out = features(batch)
        if ids is not None:
            for obj, instance_id in zip(batch, out.instance_id):
                ids.writer.paint(obj.mask, int(instance_id), obj.y, obj.x)
        yield out


class _IdWriter:
    """The uint32 object-id COG (0 where there is no object; where objects overlap the first one keeps it)."""

    def __init__(self, tmp: Path, dataset: Any, meta: BundleMeta):
        profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs,
                   "transform": dataset.transform}
        self.writer = ClassMapWriter(tmp, profile, meta.scheme, DEFAULT_OUTPUT_BLOCK, dtype="uint32",
                                     band_names=["instance_id"], legend=False, nodata=0, resampling="NEAREST",
                                     paintable=True)
        self.done = False

    def finish(self) -> None:
        self.writer.finish()
        self.done = True

    def abort(self) -> None:
        if not self.done:
            self.writer.abort()
