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

from geoseg.errors import OutputError
from geoseg.inference.backends import Backend, make_backend
from geoseg.inference.config import PREDICTOR_OPTIONS, PredictorConfig
from geoseg.inference.device import ExecutionPlan
from geoseg.inference.source import TileSource
from geoseg.inference.stages import WriteBehind, prefetch
from geoseg.inference.stitch import Region, StripAccumulator
from geoseg.inference.tta import dihedral_mean
from geoseg.inference.tiling import BlendMode, Tile, TileGrid
from geoseg.io.cog import (DEFAULT_OUTPUT_BLOCK, ClassMapWriter, check_output_block, deprecated_block_size,
                            require_geotiff_name)
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.io.rasters import gdal_env, open_raster, streaming_cache_mb
from geoseg.io.sidecars import Sidecars
from geoseg.model.fit import check_fit
from geoseg.model.loading import ModelLike, load_model
from geoseg.model.producer import model_producer
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import PredictionSummary


class Predictor:
    """A loaded model ready to segment many scenes (the network is built once).

    Settings come as a :class:`~geoseg.inference.config.PredictorConfig` (``config``), as keywords of the
    same names, or both (keywords given replace the config's values); the config validates them all.
    """

    def __init__(self, model: ModelLike = None, config: PredictorConfig | None = None, *,
                 device: str | None = None, precision: str | None = None, tile: int | None = None,
                 overlap: int | None = None, batch_size: int | None = None, blend: BlendMode | None = None,
                 backend: str | None = None, tta: bool | None = None):
        asked = (config or PredictorConfig()).updated(device=device, precision=precision, tile=tile,
                                                      overlap=overlap, batch_size=batch_size, blend=blend,
                                                      backend=backend, tta=tta)
        self.bundle = load_model(model)
        self.meta = self.bundle.meta
        settings = asked.for_model(self.bundle)
        self.backend: Backend = make_backend(self.bundle, settings.backend, settings.device, settings.precision)
        self.plan: ExecutionPlan = self.backend.plan
        self.config = settings.for_device(self.plan.device.type)
        self.class_ids = self.meta.class_ids()

    # The config's tile, overlap (for_model) and batch_size (for_device) are filled in: never None here.
    @property
    def tile(self) -> int:
        return self.config.tile  # type: ignore[return-value]

    @property
    def overlap(self) -> int:
        return self.config.overlap  # type: ignore[return-value]

    @property
    def batch_size(self) -> int:
        return self.config.batch_size  # type: ignore[return-value]

    @property
    def blend(self) -> BlendMode:
        return self.config.blend  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------- model
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes, h, w) float32 for a normalised batch (n, bands, h, w)
        (averaged over the 8 flips and rotations with ``tta``)."""
        if self.config.tta:
            return dihedral_mean(self.backend.forward, batch)
        return self.backend.forward(batch)

    # ------------------------------------------------------------------------------------- pipeline
    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, probabilities: str | os.PathLike | None = None,
                bands: list[int] | None = None, output_block: int = DEFAULT_OUTPUT_BLOCK, overwrite: bool = False,
                reporter: Reporter | None = None, pipelined: bool = True, block_size: int | None = None,
                check_values: bool = True, qml: bool = True, stac: bool = True, nodata: float | None = None
                ) -> PredictionSummary:
        """Segment the scene at ``src`` into a class-map COG at ``dst`` (optionally uint8 probabilities).

        ``output_block`` is the side of the output GeoTIFFs' internal blocks (it sizes the GDAL cache too;
        it does not bound memory, which depends on the tile size and the scene width only); ``block_size``
        is its old, deprecated name. ``pipelined`` overlaps reading, the model and blending/writing in three
        threads; False runs them one after another in this thread (same bytes out; useful for debugging).
        ``check_values=False`` runs a scene whose values lie far outside the model's training range.
        ``nodata`` declares a fill value the file does not (pixels with it in every band are not classified).
        ``qml`` and ``stac`` write the map's QGIS style and STAC Item beside it (:mod:`geoseg.io.sidecars`).
        """
        output_block = check_output_block(deprecated_block_size(block_size, output_block, "Predictor.predict"))
        reporter = reporter or NullReporter()
        check_writable(dst, overwrite, inputs=[src])
        require_geotiff_name(dst)
        sidecars = Sidecars(qml=qml, stac=stac)
        sidecars.check(dst, overwrite)
        if probabilities is not None:
            check_writable(probabilities, overwrite, inputs=[src])
            require_geotiff_name(probabilities)
            if Path(probabilities).resolve() == Path(dst).resolve():
                raise OutputError(f"{probabilities}: the probabilities must go to another file than the class map")
        with gdal_env(), open_raster(src) as dataset:
            fit = check_fit(dataset, self.meta, bands, check_values)
            if not fit.ok:
                raise fit.refusal(f"{src}: model '{self.meta.name}' does not fit")
            for warning in fit.warnings:
                reporter.warn(f"{src}: {warning}")
            grid = TileGrid(dataset.height, dataset.width, self.tile, self.overlap, self.blend)
            cache_mb = streaming_cache_mb(dataset, self.tile, output_block,
                                          1 + (self.meta.num_classes if probabilities is not None else 0))
            with contextlib.ExitStack() as stack:
                stack.enter_context(gdal_env(cache_mb))
                class_tmp = stack.enter_context(atomic_output(dst, overwrite, inputs=[src]))
                prob_tmp = (stack.enter_context(atomic_output(probabilities, overwrite, inputs=[src]))
                            if probabilities is not None else None)
                summary = self._run(dataset, (fit.band_indexes, nodata), grid, class_tmp, prob_tmp, output_block,
                                    reporter, dst, probabilities, pipelined, cache_mb)
        sidecars.write(dst, src, model_producer(self.bundle), probabilities=probabilities, overwrite=overwrite)
        return summary

    def _run(self, dataset: rasterio.DatasetReader, bands: tuple[list[int], float | None], grid: TileGrid,
             class_tmp: Path, prob_tmp: Path | None, output_block: int, reporter: Reporter, dst: Any, probabilities: Any,
             pipelined: bool, cache_mb: int) -> PredictionSummary:
        scheme = self.meta.scheme
        profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs,
                   "transform": dataset.transform}
        writers = [ClassMapWriter(class_tmp, profile, scheme, output_block)]
        if prob_tmp is not None:
            names = [c.name for c in scheme.classes]
            writers.append(ClassMapWriter(prob_tmp, profile, scheme, output_block, count=len(names),
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
            for tiles, valids, live, batch in self._batches(str(dataset.name), bands, grid, pipelined, cache_mb):
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
                sink.abort()                 # drop queued tiles: nothing more will be written
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

    def _read(self, path: str, bands: tuple[list[int], float | None], grid: TileGrid, cache_mb: int
              ) -> Iterator[tuple[Tile, np.ndarray | None, np.ndarray]]:
        """(tile, model input or None when all nodata, validity) in grid order, in the reader's own dataset."""
        with gdal_env(cache_mb), rasterio.open(path) as ds:
            source = TileSource(ds, bands[0], self.meta, self.tile, fill=bands[1])
            for tile in grid:
                yield tile, *source.read(tile)

    def _batches(self, path: str, bands: tuple[list[int], float | None], grid: TileGrid, pipelined: bool,
                 cache_mb: int
                 ) -> Iterator[tuple[list[Tile], list[np.ndarray], list[int], np.ndarray | None]]:
        """Groups of tiles in grid order with their validity masks, the positions of the tiles with data
        (``live``) and those tiles stacked for one forward pass (at most ``batch_size``; None if none).
        All-nodata tiles ride along so blending stays in order, but are never run through the model."""
        source = (prefetch(lambda: self._read(path, bands, grid, cache_mb), depth=2 * self.batch_size + 2)
                  if pipelined else self._read(path, bands, grid, cache_mb))
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

    Options are :class:`Predictor` settings (``config``, or device, precision, tile, overlap, batch_size, blend, tta,
    backend) and :meth:`Predictor.predict` settings (probabilities, bands, output_block, overwrite, reporter,
    check_values).
    """
    setup = {k: options.pop(k) for k in (*PREDICTOR_OPTIONS, "config") if k in options}
    return Predictor(model, **setup).predict(src, dst, **options)

