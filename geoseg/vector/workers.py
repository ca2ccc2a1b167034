"""Read, sieve and polygonize the blocks of a class map in parallel worker processes, results in order.

GDAL's polygonize and rasterio's conversion of its output to Python both hold the GIL, so threads do not
overlap them; processes do. Each worker opens the raster itself and returns a block's polygons as flat
arrays (:class:`~geoseg.vector.polygonize.PolygonBatch`: no per-geometry pickling); the parent merges seams and
writes, which needs the blocks in row-major order. At most ``2 × workers`` blocks are in flight, so
memory stays bounded. On a Dask cluster the same blocks are tasks (:func:`polygonize_on_worker`) and the
same parent merges and writes them: the polygons are those of a local run.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.io import DatasetReader
from rasterio.windows import Window

from geoseg.interrupts import die_with_parent
from geoseg.io.rasters import gdal_env
from geoseg.vector.polygonize import PolygonBatch, ValueFilter, polygonize_block
from geoseg.vector.sieve import block_reader

#: Most worker processes one vectorize run starts (block polygonizing scales to about this many cores
#: before the parent's merging and writing becomes the bottleneck).
MAX_WORKERS = 8


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs besides the window (sent once, when the worker starts)."""

    path: str
    nodata: int | None
    sieve_size: int
    keep_value: ValueFilter
    simplify_px: float | None
    cache_mb: int


def block_cache_mb(ds: DatasetReader, block_size: int, halo: int) -> int:
    """A GDAL block cache (MB) for one reading process: what one block's read touches, no more.

    GDAL's default (5 % of RAM in *each* process) keeps every block read until it is full, so a long run
    grew by that much per worker. Blocks go to workers in turn, so a worker rarely reuses another block's
    source tiles; a striped file is the exception (each strip spans the width and serves every block of
    a band), so there the cache holds one band of strips. ``GEOSEG_GDAL_CACHEMAX`` overrides it (gdal_env).
    """
    tile_h, tile_w = ds.block_shapes[0]
    rows = block_size + 2 * halo + tile_h
    cols = ds.width if tile_w >= ds.width else min(ds.width, block_size + 2 * halo + tile_w)
    return max(16, math.ceil(rows * cols * np.dtype(ds.dtypes[0]).itemsize * 1.25 / 2**20))


def default_workers(n_blocks: int) -> int:
    """One worker per core (at most :data:`MAX_WORKERS`), never more than there are blocks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_WORKERS, n_blocks))


def polygonized_blocks(ds: DatasetReader, windows: list[Window], job: BlockJob, workers: int,
                       client: Any = None) -> Iterator[PolygonBatch]:
    """``polygonize_block`` of every window, in order; in ``workers`` processes when that can help, or as
    tasks on the Dask ``client``'s workers (which read the class map themselves: its path travels)."""
    if client is not None:
        threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        yield from _in_order(lambda window: client.submit(polygonize_on_worker, job, window, pure=False),
                             windows, 2 * max(1, threads))
        return
    if workers <= 1 or len(windows) <= 1 or not Path(job.path).is_file():   # /vsimem/ etc.: this process only
        read = block_reader(ds, job.nodata, job.sieve_size)      # in the caller's gdal_env (see vectorize)
        for window in windows:
            yield polygonize_block(read(window), job.keep_value, window, job.simplify_px)
        return
    # fork is cheap and needs nothing importable; macOS and Windows must spawn (fork is unsafe or absent).
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(job,)) as pool:
        yield from _in_order(lambda window: pool.submit(_polygonize_window, window), windows, 2 * workers)


def _in_order(submit: Callable[[tuple[int, int, int, int]], Any], windows: list[Window], depth: int
              ) -> Iterator[PolygonBatch]:
    """Results of ``submit(window)`` (a future) in window order, at most ``depth`` in flight; those still in
    flight are cancelled when the caller stops early."""
    in_flight: deque[Any] = deque()
    pending = iter(windows)
    try:
        for window in pending:
            in_flight.append(submit(_window_tuple(window)))
            if len(in_flight) >= depth:
                break
        while in_flight:
            result = in_flight.popleft().result()
            window = next(pending, None)
            if window is not None:
                in_flight.append(submit(_window_tuple(window)))
            yield result
    finally:
        for future in in_flight:
            future.cancel()


def _window_tuple(window: Window) -> tuple[int, int, int, int]:
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)


# ------------------------------------------------------------------------------------ worker process
_WORKER: dict[str, object] = {}


def _start_worker(job: BlockJob) -> None:
    """Open the class map once per worker, inside geoseg's GDAL settings for the worker's lifetime."""
    die_with_parent()
    env = gdal_env(job.cache_mb, threads=1)
    env.__enter__()
    dataset = rasterio.open(job.path)
    _WORKER.update(job=job, read=block_reader(dataset, job.nodata, job.sieve_size), dataset=dataset, env=env)


def _polygonize_window(window: tuple[int, int, int, int]) -> PolygonBatch:
    job: BlockJob = _WORKER["job"]  # type: ignore[assignment]
    win = Window(*window)
    return polygonize_block(_WORKER["read"](win), job.keep_value, win, job.simplify_px)  # type: ignore[operator]


# ------------------------------------------------------------------------------------ Dask worker
#: The class map a Dask worker process has open: (path, mtime, nodata, sieve) -> (dataset, reader). One
#: entry: a worker also runs other tasks, and a map replaced since (another mtime) is opened afresh.
_DASK_OPEN: dict[tuple[object, ...], tuple[DatasetReader, Callable[[Window], np.ndarray]]] = {}


def polygonize_on_worker(job: BlockJob, window: tuple[int, int, int, int]) -> PolygonBatch:
    """One Dask task: a block's polygons, from the class map this worker process opened once."""
    stamp = os.stat(job.path).st_mtime_ns if Path(job.path).is_file() else None
    key = (job.path, stamp, job.nodata, job.sieve_size)
    with gdal_env(job.cache_mb, threads=1):
        if key not in _DASK_OPEN:
            for dataset, _ in _DASK_OPEN.values():
                dataset.close()
            _DASK_OPEN.clear()
            dataset = rasterio.open(job.path)
            _DASK_OPEN[key] = dataset, block_reader(dataset, job.nodata, job.sieve_size)
        win = Window(*window)
        return polygonize_block(_DASK_OPEN[key][1](win), job.keep_value, win, job.simplify_px)
