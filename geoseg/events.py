"""The JSON event protocol between ``geoseg ... --progress json`` and the programs that drive it, in one place.

The CLI writes one event per line on stdout; every line is one of the models below, told apart by its
``event`` field (a ``done`` event also by its ``task``). Nothing else writes protocol lines: the JSON
reporter (:mod:`geoseg.progress`) and the CLI both go through :func:`write_event`, so a key cannot appear
on the wire without appearing here.

The QGIS plugin never imports geoseg (it runs in QGIS's Python), so it gets the protocol as a JSON schema:
``qgis_plugin/geoseg_qgis/events.schema.json``, generated from these models by
``python scripts/write_event_schema.py``; tests/test_events.py fails when the two drift apart. ::

    {"event": "start", "task": "predict", "total": 120, "unit": "tiles", "megapixels": 0.46}
    {"event": "progress", "task": "predict", "done": 12, "total": 120, "elapsed_s": 3.1, "rate": 4.2}
    {"event": "warning", "task": "predict", "message": "..."}
    {"event": "epoch", "task": "train", "epoch": 3, "step": 24, "lr": 0.01, "train_loss": 0.8, ...}
    {"event": "done", "task": "predict", "output": "map.tif", "area_m2_per_class": {...}, ...}
    {"event": "done", "task": "vectorize", "output": "map.gpkg", "area_m2_per_class": {...}, ...}
    {"event": "done", "task": "detect", "output": "buildings.gpkg", "n_objects": 4213, ...}
    {"event": "metrics", "task": "evaluate", "output": "report", "mean_iou": 0.61, ...}
    {"event": "error", "task": "predict", "message": "...", "exit_code": 2}

A ``done`` event carries the run summary (:mod:`geoseg.summaries`) with its keys at the top level, so the
same keys name the same things in every done event: ``output``, ``area_m2_per_class``, ``elapsed_s``.
"""
from __future__ import annotations

import json
import sys
from typing import IO, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from geoseg.summaries import ObjectSummary, PredictionSummary, Score, TrainingSummary, VectorizeSummary

#: The commands that write events (``info`` only its error, with ``--json``).
Task = Literal["predict", "detect", "vectorize", "train", "evaluate", "info"]
SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


class BaseEvent(BaseModel):
    """What every event has: its kind and the command that sent it. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    event: str
    task: Task


class StartEvent(BaseEvent):
    """A long job begins: ``total`` units (tiles, blocks, steps) of work."""

    event: Literal["start"] = "start"
    total: int
    unit: str
    megapixels: float | None = None


class ProgressEvent(BaseEvent):
    """``done`` of ``total`` units after ``elapsed_s`` seconds, at ``rate`` units per second."""

    event: Literal["progress"] = "progress"
    done: int
    total: int
    elapsed_s: float
    rate: float


class WarningEvent(BaseEvent):
    """Something the user should know (a tolerable mismatch); the job goes on."""

    event: Literal["warning"] = "warning"
    message: str


class EpochEvent(BaseEvent):
    """One training epoch: a row of the training log (``LOG_FIELDS`` of geoseg.training.loop for semantic
    models, of geoseg.training.instances for instance models; the other task's scores are None)."""

    event: Literal["epoch"] = "epoch"
    task: Literal["train"] = "train"
    epoch: int
    step: int
    lr: float
    train_loss: Score
    val_mean_iou: Score = None
    val_overall_accuracy: Score = None
    val_f1: Score = None
    val_precision: Score = None
    val_recall: Score = None
    val_mask_iou: Score = None
    seconds: float
    best: bool


class PredictDoneEvent(PredictionSummary, BaseEvent):
    """A class map was written (``evaluate`` predicts too): the prediction summary."""

    event: Literal["done"] = "done"
    task: Literal["predict", "evaluate"]


class DetectDoneEvent(ObjectSummary, BaseEvent):
    """Objects were written (``geoseg predict`` with an instance model): the object summary."""

    event: Literal["done"] = "done"
    task: Literal["detect"] = "detect"


class VectorizeDoneEvent(VectorizeSummary, BaseEvent):
    """Polygons were written: the vectorize summary."""

    event: Literal["done"] = "done"
    task: Literal["vectorize"] = "vectorize"


class TrainDoneEvent(TrainingSummary, BaseEvent):
    """A model bundle was written: the training summary."""

    event: Literal["done"] = "done"
    task: Literal["train"] = "train"


class MetricsEvent(BaseEvent):
    """The headline scores of an evaluation, and the report folder they are written to."""

    event: Literal["metrics"] = "metrics"
    task: Literal["evaluate"] = "evaluate"
    output: str
    #: Pixel evaluations (class maps); null for an object evaluation.
    overall_accuracy: Score = None
    mean_iou: Score = None
    frequency_weighted_iou: Score = None
    mean_dice: Score = None
    #: Object evaluations (instance models, object methods): F1 at IoU 0.5, COCO AP50 and AP@[.5:.95]; null
    #: for a pixel evaluation.
    f1: Score = None
    ap50: Score = None
    ap: Score = None


class ErrorEvent(BaseEvent):
    """The command failed: the one-line message also written on stderr, and the exit code it ends with."""

    event: Literal["error"] = "error"
    message: str
    exit_code: int


DoneEvent = Annotated[Union[PredictDoneEvent, DetectDoneEvent, VectorizeDoneEvent, TrainDoneEvent],
                      Field(discriminator="task")]
Event = Annotated[Union[StartEvent, ProgressEvent, WarningEvent, EpochEvent, DoneEvent, MetricsEvent, ErrorEvent],
                  Field(discriminator="event")]
EVENTS: TypeAdapter[Any] = TypeAdapter(Event)
_DONE: TypeAdapter[Any] = TypeAdapter(DoneEvent)


def done_event(task: str, summary: dict[str, Any]) -> BaseEvent:
    """The done event of ``task`` for a run summary given as keys (what ``Reporter.done`` receives)."""
    return _DONE.validate_python({**summary, "event": "done", "task": task})


def json_line(event: BaseEvent) -> str:
    """One event as one line of JSON (no newline inside; NaN written as null)."""
    return event.model_dump_json()


def write_event(event: BaseEvent, stream: IO[str] | None = None) -> None:
    """Write an event as a line to ``stream`` (stdout) and flush, so a reader sees it at once."""
    out = stream if stream is not None else sys.stdout
    out.write(json_line(event) + "\n")
    out.flush()


def parse_event(line: str) -> BaseEvent:
    """The event model of one protocol line; ``pydantic.ValidationError`` if it is not one."""
    return EVENTS.validate_json(line)


def event_schema() -> dict[str, Any]:
    """The JSON schema of one protocol line (what a line looks like on the wire), for programs without geoseg."""
    schema = EVENTS.json_schema(mode="serialization")
    return {"$schema": SCHEMA_URI, "title": "geoseg event",
            "description": "One line of `geoseg ... --progress json` output. Generated from geoseg/events.py "
                           "by scripts/write_event_schema.py; do not edit.", **schema}


def event_schema_text() -> str:
    """The schema as the committed file holds it (stable formatting, so the file changes only with the models)."""
    return json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n"
