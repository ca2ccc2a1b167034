"""The streaming predictor: scene → tiles → model → blended class map (and probabilities), bounded memory.

A reader thread reads and normalises tile windows into a bounded queue while the model runs; tiles are
batched through the network, blended by :class:`~geoseg.stitch.StripAccumulator` in canonical order, and
final regions are written as soon as they are complete.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from pydantic import BaseModel

from geoseg.bundle import DEFAULT_MODEL_PATH, BundleMeta, ModelBundle, load_bundle
from geoseg.device import ExecutionPlan, plan_execution
from geoseg.errors import InputError
from geoseg.io import ClassMapWriter, check_fit, gdal_env, open_raster, read_tile
from geoseg.models import size_multiple
from geoseg.outputs import atomic_output, check_writable
from geoseg.progress import NullReporter, Reporter
from geoseg.stitch import Region, StripAccumulator
from geoseg.tiling import BlendMode, Tile, TileGrid

ModelLike = ModelBundle | str | os.PathLike | None


class PredictionSummary(BaseModel):
    """What a prediction did; the CLI prints it and ``--progress json`` emits it with the done event."""

    output: str
    probabilities: str | None
    width: int
    height: int
    tiles_total: int
    tiles_run: int
    tiles_skipped: int
    elapsed_s: float
    megapixels_per_s: float
    device: str
    precision: str
    pixels_per_class: dict[str, int]
    area_m2_per_class: dict[str, float]


def load_model(model: ModelLike = None) -> ModelBundle:
    """A bundle from a path, or the embedded default model when ``model`` is None."""
    if isinstance(model, ModelBundle):
        return model
    if model is None:
        if not DEFAULT_MODEL_PATH.is_file():
            raise InputError(f"{DEFAULT_MODEL_PATH}: no default model is installed; pass --model MODEL.safetensors")
        model = DEFAULT_MODEL_PATH
    return load_bundle(model)


class Normaliser:
    """The bundle's per-band ``(clip(x) - mean) / std``; invalid pixels become 0 (the training mean)."""

    def __init__(self, meta: BundleMeta):
        self.mean = np.array([b.mean for b in meta.bands], np.float32)[:, None, None]
        self.std = np.array([b.std for b in meta.bands], np.float32)[:, None, None]
        lows = [b.clip_low if b.clip_low is not None else -np.inf for b in meta.bands]
        highs = [b.clip_high if b.clip_high is not None else np.inf for b in meta.bands]
        self.low = np.array(lows, np.float32)[:, None, None]
        self.high = np.array(highs, np.float32)[:, None, None]

    def __call__(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = (np.clip(data, self.low, self.high) - self.mean) / self.std
        out[:, ~valid] = 0.0
        return out.astype(np.float32, copy=False)


class Predictor:
    """A loaded model ready to segment many scenes (the network is built once)."""

    def __init__(self, model: ModelLike = None, *, device: str = "auto", precision: str = "auto",
                 tile: int | None = None, overlap: int | None = None, batch_size: int | None = None,
                 blend: BlendMode = "hann"):
        self.bundle = load_model(model)
        self.meta = self.bundle.meta
        self.plan: ExecutionPlan = plan_execution(device, precision)
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
        self.network = self.bundle.build().to(self.plan.device)
        if self.plan.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)

    # ----------------------------------------------------------------------------------------- model
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes, h, w) float32 for a normalised batch (n, bands, h, w)."""
        x = torch.from_numpy(batch).to(self.plan.device, non_blocking=True)
        if self.plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(self.plan.device.type, dtype=self.plan.autocast_dtype)
                    if self.plan.autocast_dtype is not None else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            logits = self.network(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    # ------------------------------------------------------------------------------------- pipeline
    def predict(self, src: str | os.PathLike, dst: str | os.PathLike, *, probabilities: str | os.PathLike | None = None,
                bands: list[int] | None = None, block_size: int = 512, overwrite: bool = False,
                reporter: Reporter | None = None) -> PredictionSummary:
        """Segment the scene at ``src`` into a class-map COG at ``dst`` (optionally uint8 probabilities)."""
        reporter = reporter or NullReporter()
        check_writable(dst, overwrite)
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
            grid = TileGrid(dataset.height, dataset.width, self.tile, self.overlap, self.blend)
            with contextlib.ExitStack() as stack:
                class_tmp = stack.enter_context(atomic_output(dst, overwrite))
                prob_tmp = (stack.enter_context(atomic_output(probabilities, overwrite))
                            if probabilities is not None else None)
                return self._run(dataset, fit.band_indexes, grid, class_tmp, prob_tmp, block_size, reporter,
                                 dst, probabilities)

    def _run(self, dataset: rasterio.DatasetReader, indexes: list[int], grid: TileGrid, class_tmp: Path,
             prob_tmp: Path | None, block_size: int, reporter: Reporter, dst: Any, probabilities: Any
             ) -> PredictionSummary:
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
            if probs is not None and len(writers) > 1:
                writers[1].write(probs, region.y, region.x)

        accumulator = StripAccumulator(grid, self.meta.num_classes, on_final)
        reporter.start(len(grid), "tiles", megapixels=dataset.width * dataset.height / 1e6)
        t0 = time.perf_counter()
        run = skipped = 0
        try:
            for tiles, batch, valids in self._batches(dataset.name, indexes, grid):
                live = [i for i, v in enumerate(valids) if v.any()]
                probs = self.forward(batch[live]) if live else None
                for i, (tile, valid) in enumerate(zip(tiles, valids)):
                    if i in live and probs is not None:
                        p = probs[live.index(i), :, :tile.height, :tile.width]
                        accumulator.add(tile, p, valid)
                        run += 1
                    else:
                        accumulator.add(tile, None, valid)
                        skipped += 1
                reporter.advance(len(tiles))
            for writer in writers:
                writer.finish()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        elapsed = time.perf_counter() - t0
        pixel_area = abs(dataset.transform.a * dataset.transform.e - dataset.transform.b * dataset.transform.d)
        unit = (dataset.crs.linear_units_factor[1] if dataset.crs and dataset.crs.is_projected else None)
        names = scheme.names()
        summary = PredictionSummary(
            output=str(dst), probabilities=str(probabilities) if probabilities else None,
            width=dataset.width, height=dataset.height, tiles_total=len(grid), tiles_run=run, tiles_skipped=skipped,
            elapsed_s=round(elapsed, 3), megapixels_per_s=round(dataset.width * dataset.height / 1e6 / elapsed, 3),
            device=str(self.plan.device), precision=self.plan.precision,
            pixels_per_class={names[i]: int(counts[i]) for i in names if counts[i]},
            area_m2_per_class=({names[i]: float(counts[i] * pixel_area * unit ** 2) for i in names if counts[i]}
                               if unit else {}))
        reporter.done(**summary.model_dump())
        return summary

    def _finalise(self, region: Region) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids (h, w) uint8 and uint8 probabilities (classes, h, w) of a completed region."""
        covered = region.weight > 0
        probs = region.weighted / np.where(covered, region.weight, 1.0)
        classes = self.class_ids[np.argmax(probs, axis=0)]
        nodata = ~(region.valid & covered)
        classes[nodata] = self.meta.scheme.nodata_id
        probs_u8 = np.rint(probs * 255).astype(np.uint8)
        probs_u8[:, nodata] = 0
        return classes, probs_u8

    def _batches(self, path: str, indexes: list[int], grid: TileGrid
                 ) -> Iterator[tuple[list[Tile], np.ndarray, list[np.ndarray]]]:
        """Batches of (tiles, normalised pixels padded to tile size, validity masks), read ahead in a thread."""
        items: queue.Queue = queue.Queue(maxsize=max(4, 2 * self.batch_size))
        stop = threading.Event()
        done = object()

        def reader() -> None:
            try:
                with gdal_env(), rasterio.open(path) as ds:
                    for tile in grid:
                        if stop.is_set():
                            return
                        data, valid = read_tile(ds, indexes, tile.y, tile.x, tile.height, tile.width,
                                                self.meta.input_nodata)
                        normalised = self._pad(self.normalise(data, valid)) if valid.any() else None
                        items.put((tile, normalised, valid))
                items.put(done)
            except BaseException as err:  # surfaced in the consumer
                items.put(err)

        thread = threading.Thread(target=reader, name="geoseg-reader", daemon=True)
        thread.start()
        try:
            tiles: list[Tile] = []
            arrays: list[np.ndarray] = []
            valids: list[np.ndarray] = []
            empty = np.zeros((self.meta.in_channels, self.tile, self.tile), np.float32)
            while True:
                item = items.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                tile, normalised, valid = item
                tiles.append(tile)
                arrays.append(normalised if normalised is not None else empty)
                valids.append(valid)
                if sum(v.any() for v in valids) >= self.batch_size or len(tiles) >= 4 * self.batch_size:
                    yield tiles, np.stack(arrays), valids
                    tiles, arrays, valids = [], [], []
            if tiles:
                yield tiles, np.stack(arrays), valids
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    items.get_nowait()
            thread.join(timeout=10)

    def _pad(self, data: np.ndarray) -> np.ndarray:
        """Tiles of scenes smaller than a tile are mirrored out to the full tile size."""
        _, h, w = data.shape
        if h == self.tile and w == self.tile:
            return data
        return np.pad(data, ((0, 0), (0, self.tile - h), (0, self.tile - w)), mode="symmetric")


def predict(src: str | os.PathLike, dst: str | os.PathLike, model: ModelLike = None, **options: Any
            ) -> PredictionSummary:
    """Segment ``src`` into ``dst`` with ``model`` (a path, a bundle, or None for the default model).

    Options are :class:`Predictor` settings (device, precision, tile, overlap, batch_size, blend) and
    :meth:`Predictor.predict` settings (probabilities, bands, block_size, overwrite, reporter).
    """
    setup = {k: options.pop(k) for k in ("device", "precision", "tile", "overlap", "batch_size", "blend")
             if k in options}
    return Predictor(model, **setup).predict(src, dst, **options)
