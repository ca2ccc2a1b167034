"""Per-band normalisation as the bundle describes it, shared by prediction, training and calibration."""
from __future__ import annotations

import numpy as np

from geoseg.model.meta import BundleMeta


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
