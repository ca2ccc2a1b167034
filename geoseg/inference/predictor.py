"""The streaming predictor: scene → tiles → model → blended class map (and probabilities), bounded memory.

Three stages overlap (see :mod:`geoseg.inference.stages`): a reader thread reads and normalises tile windows
ahead of the model; the calling thread batches them through the network; a writer thread blends the
probabilities with :class:`~geoseg.inference.stitch.StripAccumulator` in canonical order and writes each region as
soon as it is complete. Queues between stages are bounded, so memory does not depend on the scene.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geoseg.errors import InputError
from geoseg.inference.backends import Backend, make_backend
from geoseg.inference.device import ExecutionPlan
from geoseg.inference.stages import WriteBehind, prefetch
from geoseg.inference.stitch import Region, StripAccumulator
from geoseg.inference.tiling import BlendMode, Tile, TileGrid
from geoseg.io.cog import ClassMapWriter
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.io.sidecars import Sidecars
from geoseg.io.rasters import gdal_env, open_raster, read_tile, streaming_cache_mb
from geoseg.model.fit import check_fit
from geoseg.model.loading import ModelLike, load_model
from geoseg.model.networks import size_multiple
from geoseg.model.producer import model_producer
from geoseg.model.normalise import Normaliser
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import PredictionSummary

#: Keyword options that configure a :class:`Predictor` (the rest go to :meth:`Predictor.predict`).
PREDICTOR_OPTIONS = ("device", "precision", "tile", "overlap", "batch_size", "blend", "backend")


class Predictor:
    """A loaded model ready to segment many scenes (the network is built once)."""

    def __init__(self, model: ModelLike = None, *, device: str = "auto", precision: str = "auto",
                 tile: int | None = None, overlap: int | None = None, batch_size: int | None = None,
                 blend: BlendMode = "hann", backend: str = "auto"):
        self.bundle = load_model(model)
        self.meta = self.bundle.meta
        self.backend: Backend = make_backend(self.bundle, backend, device, precision)
        self.plan: ExecutionPlan = self.backend.plan
        self.tile = tile or self.meta.tile_size
        self.overlap = self.meta.overlap if overlap is None else overlap
        multiple = size_multiple(self.meta)
        if self.tile % multiple:
            raise InputError(f"--tile {self.tile}: must be a multiple of {multiple} for "
                             f"{self.meta.model.architecture}; try {self.tile // multiple * multiple or multiple}")
        if not 0 <= self.overlap * 2 <= self.tile:
            raise InputError(f"--overlap {self.overlap}: must be between 0 and half of --tile {self.tile}")
        self.batch_size = batch_size if batch_size is not None else (8 if self.plan.device.type == "cuda" else 1)
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be at least 1")
        self.blend = blend
        self.normalise = Normaliser(self.meta)
        self.class_ids = self.meta.class_ids()

    # ----------------------------------------------------------------------------------------- model
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes, h, w) float32 for a normalised batch (n, bands, h, w)."""
        return self.backend.forward(batch)

    # ------------------------------------------------------------------------------------- pipeline
    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, probabilities: str | os.PathLike | None = None,
                bands: list[int] | None = None, block_size: int = 512, overwrite: bool = False,
                reporter: Reporter | None = None, pipelined: bool = True, qml: bool = True,
                stac: bool = True) -> PredictionSummary:
        """Segment the scene at ``src`` into a class-map COG at ``dst`` (optionally uint8 probabilities).

        ``pipelined`` overlaps reading, the model and blending/writing in three threads; False runs them
        one after another in this thread (same bytes out; useful for debugging and profiling).
        ``qml`` and ``stac`` write the map's QGIS style and STAC Item beside it (:mod:`geoseg.io.sidecars`).
        """
        reporter = reporter or NullReporter()
        check_writable(dst, overwrite)
        sidecars = Sidecars(qml=qml, stac=stac)
        sidecars.check(dst, overwrite)
        if probabilities is not None:
            check_writable(probabilities, overwrite)
            if Path(probabilities).resolve() == Path(dst).resolve():
                raise InputError(f"{probabilities}: the probabilities must go to another file than the class map")
        if block_size < 16:
            raise InputError(f"--block-size {block_size}: must be at least 16")
        with gdal_env(), open_raster(src) as dataset:
            fit = check_fit(dataset, self.meta, bands)
            if not fit.ok:
                raise InputError(f"{src}: model '{self.meta.name}' does not fit: {'; '.join(fit.problems)}")
            for warning in fit.warnings:
                reporter.warn(f"{src}: {warning}")
            grid = TileGrid(dataset.height, dataset.width, self.tile, self.overlap, self.blend)
            cache_mb = streaming_cache_mb(dataset, self.tile, block_size,
                                          1 + (self.meta.num_classes if probabilities is not None else 0))
            with contextlib.ExitStack() as stack:
                stack.enter_context(gdal_env(cache_mb))
                class_tmp = stack.enter_context(atomic_output(dst, overwrite))
                prob_tmp = (stack.enter_context(atomic_output(probabilities, overwrite))
                            if probabilities is not None else None)
                summary = self._run(dataset, fit.band_indexes, grid, class_tmp, prob_tmp, block_size, reporter,
                                    dst, probabilities, pipelined, cache_mb)
        sidecars.write(dst, src, model_producer(self.bundle), probabilities=probabilities, overwrite=overwrite)
        return summary

    def _run(self, dataset: rasterio.DatasetReader, indexes: list[int], grid: TileGrid, class_tmp: Path,
             prob_tmp: Path | None, block_size: int, reporter: Reporter, dst: Any, probabilities: Any,
             pipelined: bool, cache_mb: int) -> PredictionSummary:
        scheme = self.meta.scheme
        profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs,
                   "transform": dataset.transform}
        writers = [ClassMapWriter(class_tmp, profile, scheme, block_size)]
        if prob_tmp is not None:
            names = [c.name for c in scheme.classes]
            writers.append(ClassMapWriter(prob_tmp, profile, scheme, block_size, count=len(names),
                                          band_names=names, legend=False, nodata=None))
        counts = np.zeros(256, np.int64)

        def on_final(region: Region) -> None:
            classes, probs = self._finalise(region)
            counts[:] += np.bincount(classes.ravel(), minlength=256)
            writers[0].write(classes, region.y, region.x)
            if len(writers) > 1:
                writers[1].write(probs, region.y, region.x)

        accumulator = StripAccumulator(grid, self.meta.num_classes, on_final)

        def accumulate(done: list[tuple[Tile, np.ndarray | None, np.ndarray]]) -> None:
            for tile, probs, valid in done:
                accumulator.add(tile, probs, valid)

        sink: WriteBehind | None = WriteBehind(accumulate, depth=2) if pipelined else None
        reporter.start(len(grid), "tiles", megapixels=dataset.width * dataset.height / 1e6)
        t0 = time.perf_counter()
        run = 0
        try:
            for tiles, valids, live, batch in self._batches(str(dataset.name), indexes, grid, pipelined, cache_mb):
                probs = dict(zip(live, self.forward(batch))) if batch is not None else {}
                done = [(t, probs[i][:, :t.height, :t.width] if i in probs else None, v)
                        for i, (t, v) in enumerate(zip(tiles, valids))]
                sink.put(done) if sink is not None else accumulate(done)
                run += len(live)
                reporter.advance(len(tiles))
            if sink is not None:
                sink.close()
            for writer in writers:
                writer.finish()
        except BaseException:
            if sink is not None:
                with contextlib.suppress(BaseException):
                    sink.close()
            for writer in writers:
                writer.abort()
            raise
        elapsed = time.perf_counter() - t0
        summary = PredictionSummary(
            output=str(dst), probabilities=str(probabilities) if probabilities else None,
            width=dataset.width, height=dataset.height, tiles_total=len(grid), tiles_run=run,
            tiles_skipped=len(grid) - run, elapsed_s=round(elapsed, 3),
            megapixels_per_s=round(dataset.width * dataset.height / 1e6 / elapsed, 3),
            device=str(self.plan.device), precision=self.backend.precision,
            **_class_totals(counts, scheme.names(), dataset))
        reporter.done(**summary.model_dump())
        return summary

    def _finalise(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """Class ids (h, w) uint8 and uint8 probabilities (classes, h, w) of a completed region."""
        covered = region.weight > 0
        probs = region.weighted / np.where(covered, region.weight, 1.0)
        classes = self.class_ids[np.argmax(probs, axis=0)]
        nodata = ~(region.valid & covered)
        classes[nodata] = self.meta.scheme.nodata_id
        probs_u8 = np.rint(probs * 255).astype(np.uint8)
        probs_u8[:, nodata] = 0
        return classes, probs_u8

    def _read(self, path: str, indexes: list[int], grid: TileGrid, cache_mb: int
              ) -> Iterator[tuple[Tile, np.ndarray | None, np.ndarray]]:
        """(tile, normalised pixels padded to the tile size or None when all nodata, validity) in grid order."""
        with gdal_env(cache_mb), rasterio.open(path) as ds:
            for tile in grid:
                data, valid = read_tile(ds, indexes, tile.y, tile.x, tile.height, tile.width, self.meta.input_nodata)
                yield tile, (self._pad(self.normalise(data, valid)) if valid.any() else None), valid

    def _batches(self, path: str, indexes: list[int], grid: TileGrid, pipelined: bool, cache_mb: int
                 ) -> Iterator[tuple[list[Tile], list[np.ndarray], list[int], np.ndarray | None]]:
        """Groups of tiles in grid order with their validity masks, the positions of the tiles with data
        (``live``) and those tiles stacked for one forward pass (at most ``batch_size``; None if none).
        All-nodata tiles ride along so blending stays in order, but are never run through the model."""
        source = (prefetch(lambda: self._read(path, indexes, grid, cache_mb), depth=2 * self.batch_size + 2)
                  if pipelined else self._read(path, indexes, grid, cache_mb))
        tiles: list[Tile] = []
        valids: list[np.ndarray] = []
        live: list[int] = []
        arrays: list[np.ndarray] = []
        for tile, normalised, valid in source:
            if normalised is not None:
                live.append(len(tiles))
                arrays.append(normalised)
            tiles.append(tile)
            valids.append(valid)
            if len(arrays) >= self.batch_size or len(tiles) >= 4 * self.batch_size:
                yield tiles, valids, live, np.stack(arrays) if arrays else None
                tiles, valids, live, arrays = [], [], [], []
        if tiles:
            yield tiles, valids, live, np.stack(arrays) if arrays else None

    def _pad(self, data: np.ndarray) -> np.ndarray:
        """Tiles of scenes smaller than a tile are mirrored out to the full tile size."""
        _, h, w = data.shape
        if h == self.tile and w == self.tile:
            return data
        return np.pad(data, ((0, 0), (0, self.tile - h), (0, self.tile - w)), mode="symmetric")


def _class_totals(counts: np.ndarray, names: dict[int, str], dataset: rasterio.DatasetReader) -> dict[str, Any]:
    """Pixels per class, and areas where the CRS has linear units (geographic areas: see vectorize)."""
    pixels = {names[i]: int(counts[i]) for i in names if counts[i]}
    t = dataset.transform
    unit = dataset.crs.linear_units_factor[1] if dataset.crs and dataset.crs.is_projected else None
    pixel_m2 = abs(t.a * t.e - t.b * t.d) * unit ** 2 if unit else None
    areas = {name: n * pixel_m2 for name, n in pixels.items()} if pixel_m2 else {}
    return {"pixels_per_class": pixels, "area_m2_per_class": areas}


def predict(src: str | os.PathLike, dst: str | os.PathLike, model: ModelLike = None, **options: Any
            ) -> PredictionSummary:
    """Segment ``src`` into ``dst`` with ``model`` (a path, a bundle, or None for the default model).

    Options are :class:`Predictor` settings (device, precision, tile, overlap, batch_size, blend, backend) and
    :meth:`Predictor.predict` settings (probabilities, bands, block_size, overwrite, reporter).
    """
    setup = {k: options.pop(k) for k in PREDICTOR_OPTIONS if k in options}
    return Predictor(model, **setup).predict(src, dst, **options)

