"""Classes of a dask-backed array as a lazy dask array: one task per band of tile rows, nothing computed
until asked, and the same numbers as the file pipeline.

The scene's :class:`~geoseg.inference.tiling.TileGrid` is cut into :func:`row_partitions` (about one per
input chunk of rows). A task gets the input rows its partition's tiles cover, halo rows included, as one
NumPy block, puts them in an in-memory GeoTIFF (so pixels go through the one read path: nodata, the
bundle's normalisation, padding) and runs :meth:`Predictor.classify_rows` on it: the same tiles, weights
and summation order as :meth:`Predictor.predict`, so the classes are identical to it.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from geoseg.inference.predictor import Predictor, fit_or_refuse
from geoseg.inference.tiling import RowPartition, TileGrid, row_partitions
from geoseg.progress import NullReporter


def lazy_classes(predictor: Predictor, data: Any, profile: dict[str, Any], bands: list[int] | None = None,
                 fill: float | None = None) -> Any:
    """A lazy uint8 dask array (y, x) of the classes of the dask array ``data`` (band, y, x).

    ``profile`` holds the scene's ``crs``, ``transform``, ``nodata`` and band ``descriptions``. The bands,
    type and resolution are checked against the model now; the values are not (that would compute the
    array): the value check of :meth:`Predictor.predict` is left out.
    """
    import dask
    import dask.array as da

    count, height, width = data.shape
    with MemoryFile() as memory:
        with memory.open(**_creation(profile, count, height, width, data.dtype)) as header:
            header.descriptions = profile.get("descriptions") or (None,) * count
        with memory.open() as dataset:             # a header: no pixel is written or read
            fit = fit_or_refuse("predict_dataarray", dataset, predictor.meta, bands, False, NullReporter())
    grid = TileGrid(height, width, predictor.tile, predictor.overlap, predictor.blend)
    chunk_rows = max(data.chunks[1][0], grid.tile - grid.overlap)
    parts = row_partitions(grid, max(1, round(height / chunk_rows)))
    classify = functools.partial(_classify, predictor, profile, (fit.band_indexes, fill), grid)
    blocks = []
    for part in parts:
        top, bottom = grid.ys[part.first], min(grid.ys[part.stop - 1] + grid.tile, height)
        task = dask.delayed(classify, pure=False)(data[:, top:bottom, :], part)
        blocks.append(da.from_delayed(task, shape=(part.height, width), dtype=np.uint8))
    return da.concatenate(blocks, axis=0)


def _creation(profile: dict[str, Any], count: int, height: int, width: int, dtype: Any) -> dict[str, Any]:
    return dict(driver="GTiff", width=width, height=height, count=count, dtype=np.dtype(dtype).name,
                crs=profile["crs"], transform=profile["transform"], nodata=profile.get("nodata"), tiled=True,
                blockxsize=256, blockysize=256, SPARSE_OK=True)


def _classify(predictor: Predictor, profile: dict[str, Any], bands: tuple[Sequence[int], float | None],
              grid: TileGrid, rows: np.ndarray, part: RowPartition) -> np.ndarray:
    """One task: the classes of ``part`` from ``rows``, the input rows from ``ys[part.first]`` down."""
    top = grid.ys[part.first]
    band_profile = {**profile, "transform": profile["transform"] @ Affine.translation(0, top)}
    with MemoryFile() as memory:
        with memory.open(**_creation(band_profile, rows.shape[0], rows.shape[1], rows.shape[2], rows.dtype)) as ds:
            ds.write(rows)
        return predictor.classify_rows(memory.name, (list(bands[0]), bands[1]), grid, part)
