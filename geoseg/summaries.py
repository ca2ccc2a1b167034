"""Run summaries: what a job did, returned to Python callers, printed by the CLI, sent with ``done`` events.

One set of keys for the same things, whatever the job: ``output`` is the file written, ``area_m2_per_class``
the area of each class in m², ``elapsed_s`` the wall time. Every producer of class maps (the model predictor
and the classic methods) returns :class:`PredictionSummary`; vectorize returns :class:`VectorizeSummary`;
training :class:`TrainingSummary`; object detection :class:`ObjectSummary`. The CLI's ``done`` events (:mod:`geoseg.events`) carry them unchanged,
so faces and the QGIS plugin read the same keys.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator


def _nan_to_none(value: Any) -> Any:
    """Strict JSON has no NaN: an undefined score (no pixel of any class) is ``None``."""
    return None if isinstance(value, float) and math.isnan(value) else value


#: A score that may be undefined (NaN in numpy, ``None`` here, ``null`` in JSON).
Score = Annotated[Optional[float], BeforeValidator(_nan_to_none)]


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
    #: The index threshold a classic method chose (Otsu); ``None`` for a model.
    threshold: float | None = None


class PartSummary(BaseModel):
    """What one partition of a scene computed: its scene rows and its tiles (the halo's included)."""

    part: int
    y0: int
    y1: int
    tiles_total: int
    tiles_run: int
    #: Tiles of the halo rows computed again (the part above owns their final rows).
    tiles_halo: int


class VectorizeSummary(BaseModel):
    """What vectorize wrote: where, how, how many polygons and the area of each class in m²."""

    output: str
    format: str
    layer: str | None
    n_polygons: int
    area_m2_per_class: dict[str, float]
    crs: str | None
    elapsed_s: float

    @property
    def path(self) -> str:
        """The polygon file (the name before summaries shared their keys); same as ``output``."""
        return self.output

    @property
    def area_m2(self) -> dict[str, float]:
        """Area per class in m² (the name before summaries shared their keys); same as ``area_m2_per_class``."""
        return self.area_m2_per_class


class ObjectSummary(BaseModel):
    """What an object detection (instance segmentation) wrote: polygons, optionally an id raster, and counts."""

    output: str
    instances_raster: str | None
    format: str
    width: int
    height: int
    tiles_total: int
    tiles_run: int
    tiles_skipped: int
    n_objects: int
    objects_per_class: dict[str, int]
    area_m2_per_class: dict[str, float]
    #: Every class the detector can find -> its #rrggbb colour, in the legend's order: how to draw the objects
    #: (the polygons carry class names only; a QGIS plugin styles them with this).
    color_per_class: dict[str, str]
    #: The most tile objects held at once, waiting on open seams (bounded by a row of tiles, not the scene).
    peak_pending_objects: int
    elapsed_s: float
    megapixels_per_s: float


class TrainingSummary(BaseModel):
    """What training wrote (the bundle) and how the shipped model scored on the held-out block."""

    output: str
    best_epoch: int
    epochs_run: int
    elapsed_s: float
    #: "test" when the scores come from the config's test block, else "validation".
    scored_on: str
    #: A semantic model's scores (None for an instance model).
    overall_accuracy: Score = None
    mean_iou: Score = None
    frequency_weighted_iou: Score = None
    mean_dice: Score = None
    #: An instance model's scores: objects matched one to one at IoU >= 0.5 (None for a semantic model).
    f1: Score = None
    precision: Score = None
    recall: Score = None
    #: A RandomForest's scores on the same pixels, trained on the same pixels (None when it was not run).
    random_forest_overall_accuracy: Score = None
    random_forest_mean_iou: Score = None
