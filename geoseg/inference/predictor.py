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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine

from geoseg.errors import OutputError
from geoseg.inference.backends import Backend, make_backend
from geoseg.inference.config import PREDICTOR_OPTIONS, PredictorConfig
from geoseg.inference.device import ExecutionPlan
from geoseg.inference.source import tile_batches
from geoseg.inference.stages import WriteBehind
from geoseg.inference.stitch import Region, StripAccumulator
from geoseg.inference.tta import dihedral_mean
from geoseg.inference.tiling import BlendMode, RowPartition, Tile, TileGrid, row_partitions
from geoseg.io.cog import (DEFAULT_OUTPUT_BLOCK, ClassMapWriter, check_output_block, deprecated_block_size,
                            require_geotiff_name)
from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import atomic_output, check_writable
from geoseg.io.rasters import MIN_CACHE_MB, gdal_env, open_raster, streaming_cache_mb
from geoseg.io.sidecars import Sidecars
from geoseg.model.fit import FitReport, check_fit
from geoseg.model.loading import ModelLike, load_model
from geoseg.model.meta import BundleMeta
from geoseg.model.producer import model_producer
from geoseg.progress import NullReporter, Reporter
from geoseg.summaries import PartSummary, PredictionSummary


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
                check_values: bool = True, qml: bool = True, stac: bool = True, nodata: float | None = None,
                repeat_bands: bool = False
                ) -> PredictionSummary:
        """Segment the scene at ``src`` into a class-map COG at ``dst`` (optionally uint8 probabilities).

        ``output_block`` is the side of the output GeoTIFFs' internal blocks (it sizes the GDAL cache too;
        it does not bound memory, which depends on the tile size and the scene width only); ``block_size``
        is its old, deprecated name. ``pipelined`` overlaps reading, the model and blending/writing in three
        threads; False runs them one after another in this thread (same bytes out; useful for debugging).
        ``check_values=False`` runs a scene whose values lie far outside the model's training range.
        ``nodata`` declares a fill value the file does not (pixels with it in any band are not classified).
        ``repeat_bands`` lets one scene band feed several model bands (see :func:`~geoseg.model.fit.check_fit`).
        ``qml`` and ``stac`` write the map's QGIS style and STAC Item beside it (:mod:`geoseg.io.sidecars`).
        """
        output_block = check_output_block(deprecated_block_size(block_size, output_block, "Predictor.predict"))
        reporter = reporter or NullReporter()
        sidecars = Sidecars(qml=qml, stac=stac)
        check_outputs(src, dst, probabilities, sidecars, overwrite)
        with gdal_env(), open_raster(src) as dataset:
            fit = fit_or_refuse(src, dataset, self.meta, bands, check_values, reporter, fill=nodata,
                                repeat_bands=repeat_bands)
            grid = self.grid(dataset)
            with contextlib.ExitStack() as stack:
                cache_mb, class_tmp, prob_tmp = self._open_outputs(stack, dataset, src, dst, probabilities,
                                                                   output_block, overwrite)
                summary = self._run(dataset, (fit.band_indexes, nodata), grid, class_tmp, prob_tmp, output_block,
                                    reporter, dst, probabilities, pipelined, cache_mb)
        sidecars.write(dst, src, model_producer(self.bundle), probabilities=probabilities, overwrite=overwrite)
        return summary

    def grid(self, dataset: rasterio.DatasetReader) -> TileGrid:
        return TileGrid(dataset.height, dataset.width, self.tile, self.overlap, self.blend)

    def _open_outputs(self, stack: contextlib.ExitStack, dataset: rasterio.DatasetReader, src: Any, dst: Any,
                      probabilities: Any, output_block: int, overwrite: bool) -> tuple[int, Path, Path | None]:
        """Enter, on ``stack``, the GDAL cache sized for this stream and the atomic class map (and
        probabilities) temporaries; their cache size and paths."""
        cache_mb = streaming_cache_mb(dataset, self.tile, output_block,
                                      1 + (self.meta.num_classes if probabilities is not None else 0))
        stack.enter_context(gdal_env(cache_mb))
        class_tmp = stack.enter_context(atomic_output(dst, overwrite, inputs=[src]))
        prob_tmp = (stack.enter_context(atomic_output(probabilities, overwrite, inputs=[src]))
                    if probabilities is not None else None)
        return cache_mb, class_tmp, prob_tmp

    def predict_part(self, src: str | os.PathLike, dst: str | os.PathLike, part: int, of: int, *,
                     probabilities: str | os.PathLike | None = None, bands: list[int] | None = None,
                     output_block: int = DEFAULT_OUTPUT_BLOCK, check_values: bool = True,
                     nodata: float | None = None, repeat_bands: bool = False, overwrite: bool = False
                     ) -> PartSummary:
        """Partition ``part`` of ``row_partitions(grid, of)`` of the scene into a tiled GeoTIFF at ``dst``.

        The part holds the scene rows the partition owns (full width; probabilities in a second file),
        with the very pixels :meth:`predict` writes there: its halo tile rows are computed again and
        their own rows dropped. Parts are assembled into the class map by
        :func:`geoseg.inference.partitioned.assemble`. Memory is bounded as in :meth:`predict`.
        """
        with gdal_env(), open_raster(src) as dataset:
            fit = fit_or_refuse(src, dataset, self.meta, bands, check_values, NullReporter(), fill=nodata,
                                repeat_bands=repeat_bands)
            grid = self.grid(dataset)
            partition = row_partitions(grid, of)[part]
            profile = {"width": dataset.width, "height": partition.height, "crs": dataset.crs,
                       "transform": dataset.transform @ Affine.translation(0, partition.y0)}
            with contextlib.ExitStack() as stack:
                cache_mb, class_tmp, prob_tmp = self._open_outputs(stack, dataset, src, dst, probabilities,
                                                                   output_block, overwrite)
                writers = output_writers(self.meta.scheme, class_tmp, prob_tmp, profile, output_block, cog=False)

                def on_final(region: Region) -> None:
                    if region.y >= partition.y0:          # the halo's own rows belong to the part above
                        self._write_region(region, writers, partition.y0)

                run = self._stream(str(dataset.name), (fit.band_indexes, nodata), grid, partition.first,
                                   partition.stop, on_final, writers, NullReporter(), True, cache_mb,
                                   count_from=partition.row)
        return PartSummary(part=partition.index, y0=partition.y0, y1=partition.y1,
                           tiles_total=(partition.stop - partition.row) * len(grid.xs), tiles_run=run,
                           tiles_halo=(partition.row - partition.first) * len(grid.xs))

    def classify_rows(self, band: str, bands: tuple[list[int], float | None], grid: TileGrid,
                      partition: RowPartition) -> np.ndarray:
        """The class ids (uint8) of ``partition``'s rows, from ``band``: a raster holding the scene's rows
        ``ys[partition.first]`` to the bottom of the partition's last tile row (its halo included), as a
        lazy array's task hands it over. The same tiles, blending and order as :meth:`predict`."""
        out = np.empty((partition.height, grid.width), np.uint8)

        def on_final(region: Region) -> None:
            if region.y >= partition.y0:
                classes, _ = self._finalise(region)
                h, w = classes.shape
                out[region.y - partition.y0:region.y - partition.y0 + h, region.x:region.x + w] = classes

        self._stream(band, bands, grid, partition.first, partition.stop, on_final, [], NullReporter(), False,
                     MIN_CACHE_MB, y_offset=grid.ys[partition.first])
        return out

    def _write_region(self, region: Region, writers: list[ClassMapWriter], y0: int = 0) -> None:
        classes, probs = self._finalise(region)
        writers[0].write(classes, region.y - y0, region.x)
        if len(writers) > 1:
            writers[1].write(probs, region.y - y0, region.x)

    def _stream(self, path: str, bands: tuple[list[int], float | None], grid: TileGrid, first: int, stop: int,
                on_final: Callable[[Region], None], writers: list[ClassMapWriter], reporter: Reporter,
                pipelined: bool, cache_mb: int, count_from: int = 0, y_offset: int = 0) -> int:
        """Grid rows ``first`` to ``stop - 1`` through read -> model -> blend (``on_final`` gets each final
        region), then the writers finished; everything aborted on an error. The number of tiles run in grid
        rows from ``count_from`` on (a partition's own rows, not its halo). ``y_offset``: see :meth:`_batches`."""
        accumulator = StripAccumulator(grid, self.meta.num_classes, on_final, first_row=first)

        def accumulate(done: list[tuple[Tile, np.ndarray | None, np.ndarray]]) -> None:
            for tile, probs, valid in done:
                accumulator.add(tile, probs, valid)

        sink: WriteBehind | None = WriteBehind(accumulate, depth=2) if pipelined else None
        run = 0
        try:
            for tiles, valids, live, batch in self._batches(path, bands, grid, first, stop, pipelined, cache_mb,
                                                            y_offset):
                probs = dict(zip(live, self.forward(batch))) if batch is not None else {}
                done = [(t, probs[i][:, :t.height, :t.width] if i in probs else None, v)
                        for i, (t, v) in enumerate(zip(tiles, valids))]
                sink.put(done) if sink is not None else accumulate(done)
                run += sum(1 for i in live if tiles[i].row >= count_from)
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
        return run

    def _run(self, dataset: rasterio.DatasetReader, bands: tuple[list[int], float | None], grid: TileGrid,
             class_tmp: Path, prob_tmp: Path | None, output_block: int, reporter: Reporter, dst: Any, probabilities: Any,
             pipelined: bool, cache_mb: int) -> PredictionSummary:
        scheme = self.meta.scheme
        profile = {"width": dataset.width, "height": dataset.height, "crs": dataset.crs,
                   "transform": dataset.transform}
        writers = output_writers(self.meta.scheme, class_tmp, prob_tmp, profile, output_block)
        reporter.start(len(grid), "tiles", megapixels=dataset.width * dataset.height / 1e6)
        t0 = time.perf_counter()
        run = self._stream(str(dataset.name), bands, grid, 0, len(grid.ys),
                           lambda region: self._write_region(region, writers), writers, reporter, pipelined, cache_mb)
        counts = writers[0].counts
        elapsed = time.perf_counter() - t0
        summary = PredictionSummary(
            output=str(dst), probabilities=str(probabilities) if probabilities else None,
            width=dataset.width, height=dataset.height, tiles_total=len(grid), tiles_run=run,
            tiles_skipped=len(grid) - run, elapsed_s=round(elapsed, 3),
            megapixels_per_s=round(dataset.width * dataset.height / 1e6 / elapsed, 3),
            device=str(self.plan.device), precision=self.backend.precision,
            **class_totals(counts, scheme.names(), dataset))
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

    def _batches(self, path: str, bands: tuple[list[int], float | None], grid: TileGrid, first: int, stop: int,
                 pipelined: bool, cache_mb: int, y_offset: int = 0
                 ) -> Iterator[tuple[list[Tile], list[np.ndarray], list[int], np.ndarray | None]]:
        """Tiles of grid rows ``first`` to ``stop - 1`` in batches (:func:`~geoseg.inference.source.tile_batches`),
        read on a thread when ``pipelined``; ``y_offset``: see :func:`~geoseg.inference.source.read_tiles`."""
        return tile_batches(path, bands[0], bands[1], self.meta, grid, cache_mb, self.batch_size, pipelined,
                            (first, stop), y_offset)


def output_writers(scheme: ClassScheme, class_tmp: Path, prob_tmp: Path | None, profile: dict[str, Any],
                   output_block: int, cog: bool = True) -> list[ClassMapWriter]:
    """The class map's writer, and the probabilities' when asked (uint8, one band per class)."""
    writers = [ClassMapWriter(class_tmp, profile, scheme, output_block, cog=cog)]
    if prob_tmp is not None:
        names = [c.name for c in scheme.classes]
        writers.append(ClassMapWriter(prob_tmp, profile, scheme, output_block, count=len(names),
                                      band_names=names, legend=False, nodata=None, cog=cog))
    return writers


def fit_or_refuse(src: Any, dataset: rasterio.DatasetReader, meta: BundleMeta, bands: list[int] | None,
                  check_values: bool, reporter: Reporter, *, fill: float | None = None, repeat_bands: bool = False
                  ) -> FitReport:
    """The scene's fit to the model (:func:`~geoseg.model.fit.check_fit`): refused with the reason, or
    accepted with warnings reported."""
    fit = check_fit(dataset, meta, bands, check_values, fill=fill, repeat_bands=repeat_bands)
    if not fit.ok:
        raise fit.refusal(f"{src}: model '{meta.name}' does not fit")
    for warning in fit.warnings:
        reporter.warn(f"{src}: {warning}")
    return fit


def check_outputs(src: Any, dst: Any, probabilities: Any, sidecars: Sidecars, overwrite: bool) -> None:
    """Refuse, before any work, outputs that exist (without ``overwrite``), cannot be written or are misnamed."""
    check_writable(dst, overwrite, inputs=[src])
    require_geotiff_name(dst)
    sidecars.check(dst, overwrite)
    if probabilities is not None:
        check_writable(probabilities, overwrite, inputs=[src])
        require_geotiff_name(probabilities)
        if Path(probabilities).resolve() == Path(dst).resolve():
            raise OutputError(f"{probabilities}: the probabilities must go to another file than the class map")


def class_totals(counts: np.ndarray, names: dict[int, str], dataset: rasterio.DatasetReader) -> dict[str, Any]:
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
    check_values, qml, stac, nodata, repeat_bands).
    """
    setup = {k: options.pop(k) for k in (*PREDICTOR_OPTIONS, "config") if k in options}
    return Predictor(model, **setup).predict(src, dst, **options)

