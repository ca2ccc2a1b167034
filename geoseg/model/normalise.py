"""Per-band normalisation as the bundle describes it, shared by prediction, training and calibration.

``fixed`` bundles record each band's clip range, mean and std (the training pixels'). ``scene`` bundles
record only the mode: every scene is standardised by robust statistics of its own valid pixels, sampled
in :func:`~geoseg.io.rasters.sample_windows` (median, interquartile range and 0.5-99.5 percentile clip
per band). Those are unchanged by any per-band gain and offset, and hardly moved by the clipped tails and
quantisation of an 8-bit percentile stretch, so DN, reflectance and 8-bit versions of a scene reach the
network as nearly the same numbers.

The derived index channels a bundle asks for (:mod:`geoseg.model.indices`) are computed here too, from the
raw bands, so every path that normalises also derives them, identically.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel
from rasterio.windows import Window

from geoseg.io.rasters import sample_windows
from geoseg.model.indices import compute_indices
from geoseg.model.meta import BandSpec, BundleMeta

#: A window's pixels (bands, h, w) and validity (h, w).
WindowReader = Callable[[Window], tuple[np.ndarray, np.ndarray]]
#: The clip percentiles of scene statistics (as the fixed mode's default).
SCENE_CLIP = (0.5, 99.5)
#: The interquartile range of a normal distribution in standard deviations: IQR / this estimates the std.
IQR_PER_STD = 1.349


class BandStatistics(BaseModel):
    """One band's robust statistics in a scene: ``centre`` (median), ``scale`` (IQR / 1.349, else the std
    of the clipped values; 0 for a constant band) and the clip range."""

    centre: float
    scale: float
    low: float
    high: float


def scene_statistics(read: WindowReader, height: int, width: int) -> list[BandStatistics] | None:
    """Robust per-band statistics of the valid pixels in the sample windows of a ``height`` x ``width``
    raster (None when no sampled pixel is valid). ``read`` reads a window: from a file for prediction,
    from memory for training, the same pixels either way."""
    pixels = []
    for window in sample_windows(height, width):
        data, valid = read(window)
        pixels.append(data[:, valid])
    values = np.concatenate(pixels, axis=1).astype(np.float64)
    if not values.shape[1]:
        return None
    stats = []
    for band in values:
        low, q1, centre, q3, high = np.percentile(band, [SCENE_CLIP[0], 25, 50, 75, SCENE_CLIP[1]])
        scale = (q3 - q1) / IQR_PER_STD or float(np.clip(band, low, high).std())
        stats.append(BandStatistics(centre=centre, scale=scale, low=low, high=high))
    return stats


class Normaliser:
    """``(clip(x) - centre) / scale`` per channel, over the bands then the derived indices; invalid pixels
    become 0 (the centre).

    ``scene`` holds the scene's band statistics for a ``scene``-normalised bundle (see :meth:`for_scene`); a
    ``fixed`` bundle brings its own numbers. Derived indices always use the bundle's (training) numbers: they
    are ratios, already on one scale.
    """

    def __init__(self, meta: BundleMeta, scene: list[BandStatistics] | None = None):
        def recorded(spec: BandSpec) -> tuple[float, float, float, float]:
            return (spec.mean, spec.std, -np.inf if spec.clip_low is None else spec.clip_low,
                    np.inf if spec.clip_high is None else spec.clip_high)

        if meta.normalisation == "scene":
            if scene is None:
                raise ValueError(f"{meta.name}: a scene-normalised model needs the scene's statistics")
            rows = [(s.centre, s.scale or 1.0, s.low, s.high) for s in scene]   # constant band: centred only
        else:
            rows = [recorded(b) for b in meta.bands]
        rows += [recorded(d) for d in meta.derived]
        self.band_names = [b.name for b in meta.bands]
        self.indices = [d.name for d in meta.derived]
        self.mean, self.std, self.low, self.high = (np.array(column, np.float32)[:, None, None]
                                                    for column in zip(*rows))

    @classmethod
    def for_scene(cls, meta: BundleMeta, read: WindowReader, height: int, width: int) -> "Normaliser":
        """The normaliser of one scene: the bundle's numbers, or the scene's own sampled statistics (an
        all-nodata scene gets neutral ones: nothing of it reaches the model)."""
        if meta.normalisation != "scene":
            return cls(meta)
        stats = scene_statistics(read, height, width)
        neutral = [BandStatistics(centre=0.0, scale=1.0, low=-np.inf, high=np.inf)] * len(meta.bands)
        return cls(meta, stats or neutral)

    def __call__(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.indices:
            data = np.concatenate([data, compute_indices(data, self.band_names, self.indices)])
        out = (np.clip(data, self.low, self.high) - self.mean) / self.std
        out[:, ~valid] = 0.0
        return out.astype(np.float32, copy=False)
