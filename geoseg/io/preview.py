"""Quick-look PNGs: the scene in natural colour beside its class map in the legend's colours.

Written with GDAL's PNG driver (no plotting library needed), downsampled to at most ``max_side`` px.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling

from geoseg.io.legend import ClassScheme
from geoseg.io.rasters import open_raster
from geoseg.io.outputs import atomic_output

RGB_NAMES = ("red", "green", "blue")


def natural_colour(dataset: rasterio.DatasetReader, shape: tuple[int, int]) -> np.ndarray:
    """(3, h, w) uint8: red/green/blue bands by name (else the first three), 2–98 % stretched."""
    names = [(d or "").lower() for d in dataset.descriptions]
    if all(n in names for n in RGB_NAMES):
        indexes = [names.index(n) + 1 for n in RGB_NAMES]
    else:
        indexes = [min(i, dataset.count) for i in (1, 2, 3)]
    data = dataset.read(indexes, out_shape=(3, *shape), resampling=Resampling.average, masked=True).astype("float32")
    out = np.zeros((3, *shape), np.uint8)
    for band in range(3):
        values = data[band].compressed()
        if values.size == 0:
            continue
        low, high = np.percentile(values, (2, 98))
        scaled = np.clip((data[band].filled(low) - low) / max(high - low, 1e-6), 0, 1)
        out[band] = (scaled * 255).astype(np.uint8)
    return out


def class_colours(dataset: rasterio.DatasetReader, shape: tuple[int, int]) -> np.ndarray:
    """(3, h, w) uint8: the class map painted with its legend (nodata white)."""
    classes = dataset.read(1, out_shape=shape, resampling=Resampling.nearest)
    scheme = ClassScheme.from_dataset(dataset)
    lut = np.full((256, 3), 255, np.uint8)
    if scheme is not None:
        for info in scheme.classes:
            lut[info.id] = info.rgb
    return np.moveaxis(lut[classes], -1, 0)


def write_preview(scene: str | os.PathLike, class_map: str | os.PathLike, png: str | os.PathLike,
                  max_side: int = 1024, overwrite: bool = False) -> Path:
    """Scene and class map side by side, separated by a white gap."""
    with open_raster(scene) as src, open_raster(class_map) as cls:
        scale = min(1.0, max_side / max(src.width, src.height))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        gap = np.full((3, shape[0], 8), 255, np.uint8)
        image = np.concatenate([natural_colour(src, shape), gap, class_colours(cls, shape)], axis=2)
    with atomic_output(png, overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", driver="PNG", width=image.shape[2], height=image.shape[1], count=3,
                           dtype="uint8") as out:
            out.write(image)
    return Path(png)
