"""Segmentation accuracy from a confusion matrix accumulated over tiles.

Everything is derived from one integer matrix ``cm[true, predicted]`` so that metrics over a whole scene
are exact whatever the tiling. Ignored pixels (label outside the scheme, nodata, or masked) never enter it.
A score whose denominator is zero (a class absent from both labels and prediction for IoU; absent from the
labels for recall; never predicted for precision) is NaN and left out of the means, instead of being
counted as 0 or 1 and skewing them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel

IGNORE_INDEX = 255


class ConfusionMatrix:
    """``matrix[t, p]``: pixels of true class index ``t`` predicted as class index ``p``."""

    def __init__(self, num_classes: int):
        if not 0 < num_classes < IGNORE_INDEX:
            raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX - 1}, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, target: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add a tile: class *indices* (not ids); targets equal to IGNORE_INDEX or outside ``valid`` are skipped."""
        target = np.asarray(target).ravel().astype(np.int64)
        predicted = np.asarray(predicted).ravel().astype(np.int64)
        keep = (target >= 0) & (target < self.num_classes)
        if valid is not None:
            keep &= np.asarray(valid).ravel().astype(bool)
        if np.any((predicted[keep] < 0) | (predicted[keep] >= self.num_classes)):
            raise ValueError("predicted class index outside the scheme")
        flat = target[keep] * self.num_classes + predicted[keep]
        self.matrix += np.bincount(flat, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def __iadd__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        self.matrix += other.matrix
        return self

    def scores(self, names: list[str] | None = None) -> "Scores":
        return scores_from_matrix(self.matrix, names)


class ClassScores(BaseModel):
    name: str
    support: int
    predicted: int
    iou: float
    dice: float
    precision: float
    recall: float


class Scores(BaseModel):
    """Per-class and summary scores; NaN means "undefined for this data" (JSON: null)."""

    overall_accuracy: float
    mean_iou: float
    frequency_weighted_iou: float
    mean_dice: float
    mean_precision: float
    mean_recall: float
    pixels: int
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]

    def summary(self) -> dict[str, float]:
        """The headline numbers (what a bundle's metadata records)."""
        return {"overall_accuracy": self.overall_accuracy, "mean_iou": self.mean_iou,
                "frequency_weighted_iou": self.frequency_weighted_iou, "mean_dice": self.mean_dice}

    def to_json_dict(self) -> dict[str, Any]:
        """Plain dict with NaN written as None (strict JSON has no NaN)."""
        return _nan_to_none(self.model_dump())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def scores_from_matrix(matrix: np.ndarray, names: list[str] | None = None) -> Scores:
    """All scores of a confusion matrix ``matrix[true, predicted]``."""
    matrix = np.asarray(matrix, np.int64)
    n = matrix.shape[0]
    names = names or [str(i) for i in range(n)]
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    total = float(matrix.sum())
    iou = _ratio(tp, support + predicted - tp)
    dice = _ratio(2 * tp, support + predicted)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    present = support > 0
    fw = float(np.sum(support[present] / total * np.nan_to_num(iou[present]))) if total else math.nan
    per_class = [ClassScores(name=names[i], support=int(support[i]), predicted=int(predicted[i]), iou=iou[i],
                             dice=dice[i], precision=precision[i], recall=recall[i]) for i in range(n)]
    return Scores(overall_accuracy=float(tp.sum() / total) if total else math.nan, mean_iou=_mean(iou),
                  frequency_weighted_iou=fw, mean_dice=_mean(dice), mean_precision=_mean(precision),
                  mean_recall=_mean(recall), pixels=int(total), per_class=per_class,
                  confusion_matrix=matrix.tolist())


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
