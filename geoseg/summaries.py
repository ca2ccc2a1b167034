"""Run summaries: what a job did, returned to Python callers, printed by the CLI, sent with ``done`` events.

Every producer of class maps (the model predictor and the classic methods) returns the same
:class:`PredictionSummary`, so faces and the plugin read one set of keys.
"""
from __future__ import annotations

from pydantic import BaseModel


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
