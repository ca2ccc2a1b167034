"""Per-band normalisation as the bundle describes it, shared by prediction, training and calibration.

The derived index channels a bundle asks for (:mod:`geoseg.model.indices`) are computed here too, from the
raw bands, so every path that normalises also derives them, identically.
"""
from __future__ import annotations

import numpy as np

from geoseg.model.indices import compute_indices
from geoseg.model.meta import BundleMeta


class Normaliser:
    """The bundle's per-channel ``(clip(x) - mean) / std`` over bands then derived indices; invalid pixels
    become 0 (the training mean)."""

    def __init__(self, meta: BundleMeta):
        channels = [*meta.bands, *meta.derived]
        self.band_names = [b.name for b in meta.bands]
        self.indices = [d.name for d in meta.derived]
        self.mean = np.array([b.mean for b in channels], np.float32)[:, None, None]
        self.std = np.array([b.std for b in channels], np.float32)[:, None, None]
        lows = [b.clip_low if b.clip_low is not None else -np.inf for b in channels]
        highs = [b.clip_high if b.clip_high is not None else np.inf for b in channels]
        self.low = np.array(lows, np.float32)[:, None, None]
        self.high = np.array(highs, np.float32)[:, None, None]

    def __call__(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.indices:
            data = np.concatenate([data, compute_indices(data, self.band_names, self.indices)])
        out = (np.clip(data, self.low, self.high) - self.mean) / self.std
        out[:, ~valid] = 0.0
        return out.astype(np.float32, copy=False)
