"""The event protocol: every kind round-trips, the committed schema is the models', and the CLI speaks only it."""
from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import yaml
from pydantic import BaseModel, ValidationError
from rasterio.windows import Window

from geoseg.evaluation.metrics import scores_from_matrix
from geoseg.events import (BaseEvent, DetectDoneEvent, EpochEvent, ErrorEvent, MetricsEvent, PredictDoneEvent,
                           ProgressEvent, StartEvent, TrainDoneEvent, VectorizeDoneEvent, WarningEvent, done_event,
                           Event, event_schema_text, json_line, parse_event)
from geoseg.progress import JsonReporter
from geoseg.training.loop import LOG_FIELDS

from .conftest import ROOT, ZION, ZION_LABELS, tiny_bundle, tiny_config, tiny_meta, write_crop

SCHEMA_PATH = ROOT / "qgis_plugin" / "geoseg_qgis" / "events.schema.json"

PREDICTION = dict(output="/d/map.tif", probabilities=None, width=4, height=3, tiles_total=2, tiles_run=1,
                  tiles_skipped=1, elapsed_s=0.5, megapixels_per_s=0.1, device="cpu", precision="fp32",
                  pixels_per_class={"water": 12}, area_m2_per_class={"water": 10800.0})
EXAMPLES: list[BaseEvent] = [
    StartEvent(task="predict", total=120, unit="tiles", megapixels=0.46),
    StartEvent(task="train", total=40, unit="steps"),
    ProgressEvent(task="vectorize", done=3, total=4, elapsed_s=1.5, rate=2.0),
    WarningEvent(task="predict", message="scene.tif: resolution 10 m, the model was trained at 30 m"),
    EpochEvent(epoch=2, step=16, lr=0.01, train_loss=0.8, val_mean_iou=0.5, val_overall_accuracy=0.7, seconds=3.2,
               best=True),
    PredictDoneEvent(task="predict", **PREDICTION),
    PredictDoneEvent(task="evaluate", **{**PREDICTION, "precision": "ndwi-otsu threshold 0.0312", "threshold": 0.0312}),
    VectorizeDoneEvent(output="/d/map.gpkg", format="gpkg", layer="map", n_polygons=7,
                       area_m2_per_class={"water": 10800.0}, crs="EPSG:32612", elapsed_s=0.2),
    TrainDoneEvent(output="/d/run/m.safetensors", best_epoch=2, epochs_run=3, elapsed_s=60.0, scored_on="validation",
                   overall_accuracy=0.7, mean_iou=0.5, frequency_weighted_iou=0.6, mean_dice=0.55),
    MetricsEvent(output="/d/report", overall_accuracy=0.7, mean_iou=0.5, frequency_weighted_iou=0.6, mean_dice=0.55),
    MetricsEvent(output="/d/report", f1=0.61, ap50=0.55, ap=0.31),
    DetectDoneEvent(output="/d/buildings.gpkg", instances_raster=None, format="gpkg", width=900, height=900,
                    tiles_total=16, tiles_run=16, tiles_skipped=0, n_objects=41, objects_per_class={"building": 41},
                    area_m2_per_class={"building": 8210.5}, color_per_class={"building": "#d62728"},
                    peak_pending_objects=12, elapsed_s=3.1,
                    megapixels_per_s=0.26),
    ErrorEvent(task="info", message="absent.tif: file not found", exit_code=2),
]


def event_classes() -> set[type]:
    """Every model in the ``Event`` union, nested unions (done by task) opened."""
    found: set[type] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            found.add(tp)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(Event)
    return found


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: f"{e.event}-{e.task}")
def test_every_event_round_trips_through_one_json_line(event: BaseEvent) -> None:
    line = json_line(event)
    assert "\n" not in line
    data = json.loads(line)
    assert list(data)[:2] == ["event", "task"] and data["event"] == event.event and data["task"] == event.task
    assert parse_event(line) == event and type(parse_event(line)) is type(event)


def test_every_kind_of_event_has_an_example() -> None:
    assert event_classes() == {type(e) for e in EXAMPLES}


def test_unknown_kinds_and_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        parse_event('{"event": "finished", "task": "predict"}')
    with pytest.raises(ValidationError):  # vectorize's keys before the summaries shared them
        done_event("vectorize", {"path": "p.gpkg", "format": "gpkg", "layer": "p", "n_polygons": 1,
                                 "area_m2": {}, "crs": None, "elapsed_s": 1.0})
    with pytest.raises(ValidationError):
        parse_event('{"event": "done", "task": "info", "output": "x"}')


def test_undefined_scores_are_null_not_nan() -> None:
    line = json_line(MetricsEvent(output="r", overall_accuracy=0.5, mean_iou=math.nan, frequency_weighted_iou=0.5,
                                  mean_dice=math.nan))
    assert json.loads(line)["mean_iou"] is None  # strict JSON: NaN is not a number there
    assert parse_event(line).mean_iou is None


def test_epoch_events_carry_the_training_log_row() -> None:
    from geoseg.training.instances import LOG_FIELDS as INSTANCE_LOG_FIELDS

    fields = [f for f in EpochEvent.model_fields if f not in ("event", "task")]
    for log in (LOG_FIELDS, INSTANCE_LOG_FIELDS):            # each task's row, in order, within the event
        assert [f for f in fields if f in log] == list(log)
    assert set(fields) == set(LOG_FIELDS) | set(INSTANCE_LOG_FIELDS)


def test_metrics_events_carry_the_headline_scores() -> None:
    from geoseg.evaluation.instance_metrics import score_objects

    headline = scores_from_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"]).summary()
    boxes = np.array([shapely.box(0, 0, 4, 4)], dtype=object)
    objects = score_objects(boxes, np.array([0.9]), boxes, 1.0).summary()
    assert set(MetricsEvent.model_fields) - {"event", "task", "output"} == set(headline) | set(objects)
    assert MetricsEvent(output="r", **headline).f1 is None
    assert MetricsEvent(output="r", **objects).mean_iou is None and MetricsEvent(output="r", **objects).f1 == 1.0


def test_predict_and_vectorize_summaries_share_their_keys() -> None:
    shared = {"output", "area_m2_per_class", "elapsed_s"}
    assert shared <= set(PredictDoneEvent.model_fields) & set(VectorizeDoneEvent.model_fields)
    assert "output" in TrainDoneEvent.model_fields


def test_vectorize_summary_keeps_its_old_attribute_names() -> None:
    """``path`` and ``area_m2`` (before the summaries shared their keys) still read, but never reach JSON."""
    summary = EXAMPLES[7]
    assert summary.path == summary.output and summary.area_m2 == summary.area_m2_per_class
    assert not {"path", "area_m2"} & set(json.loads(json_line(summary)))


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.is_file(), f"{SCHEMA_PATH} is missing: run python scripts/write_event_schema.py"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == event_schema_text(), (
        f"{SCHEMA_PATH} is out of date with geoseg/events.py: run python scripts/write_event_schema.py "
        "(and check that the QGIS plugin still reads what it needs)")


def test_json_reporter_writes_protocol_lines_only() -> None:
    stream = io.StringIO()
    reporter = JsonReporter("vectorize", stream, min_interval=0)
    reporter.start(2, unit="blocks", megapixels=1.5)
    reporter.advance()
    reporter.warn("a warning")
    reporter.advance()
    reporter.done(**EXAMPLES[7].model_dump(exclude={"event", "task"}))
    events = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert [e.event for e in events] == ["start", "progress", "warning", "progress", "done"]
    assert {e.task for e in events} == {"vectorize"} and events[-1] == EXAMPLES[7]
    with pytest.raises(ValidationError):  # a key no summary has never reaches the wire
        JsonReporter("predict", io.StringIO()).done(**PREDICTION, extra_key=1)


# ------------------------------------------------------------------------------------------ the CLI
def geoseg(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Every stdout line: with ``--progress json`` there must be nothing but events."""
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    return lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``predict`` (tiled) then ``vectorize`` of its class map, and failures, all with ``--progress json``."""
    tmp = tmp_path_factory.mktemp("events")
    model = tmp / "zion_tiny.safetensors"
    tiny_bundle(tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0,
                          input_dtype="uint16")).save(model)
    classes, polygons = tmp / "c.tif", tmp / "p.gpkg"
    return {
        "classes": classes, "polygons": polygons,
        "predict": geoseg("predict", ZION, "-o", classes, "--model", model, "--tile", 64, "--overlap", 16,
                          "--progress", "json"),
        "vectorize": geoseg("vectorize", classes, "-o", polygons, "--progress", "json"),
        "bad predict": geoseg("predict", tmp / "missing.tif", "-o", tmp / "o.tif", "--model", model,
                              "--progress", "json"),
        "bad vectorize": geoseg("vectorize", ZION, "-o", tmp / "z.gpkg", "--progress", "json"),
        "bad info": geoseg("info", tmp / "absent.tif", "--json"),
    }


def test_predict_and_vectorize_emit_only_events(runs: dict[str, Any]) -> None:
    for name in ("predict", "vectorize"):
        assert runs[name].returncode == 0, runs[name].stderr
    predict = [parse_event(line) for line in lines_of(runs["predict"])]
    vectorize = [parse_event(line) for line in lines_of(runs["vectorize"])]
    assert [e.event for e in predict[:1] + predict[-2:]] == ["start", "progress", "done"]
    assert predict[0].total == predict[-1].tiles_total > 100  # a tiled run: 64 px tiles on a 1128 x 404 scene
    assert [e.event for e in vectorize[:1] + vectorize[-1:]] == ["start", "done"]
    done_p, done_v = predict[-1], vectorize[-1]
    assert isinstance(done_p, PredictDoneEvent) and isinstance(done_v, VectorizeDoneEvent)
    assert (done_p.output, done_v.output) == (str(runs["classes"]), str(runs["polygons"]))
    # the same key means the same thing: the polygons cover the class map's classes with the same areas
    assert done_v.area_m2_per_class.keys() == done_p.area_m2_per_class.keys()
    for name, area in done_p.area_m2_per_class.items():
        assert done_v.area_m2_per_class[name] == pytest.approx(area, rel=1e-6)


@pytest.mark.parametrize("name, task, message", [
    ("bad predict", "predict", "missing.tif: file not found"),
    ("bad vectorize", "vectorize", "has 4 bands; vectorize needs a single-band class map"),
    ("bad info", "info", "absent.tif: file not found"),
])
def test_bad_input_ends_with_an_error_event(runs: dict[str, Any], name: str, task: str, message: str) -> None:
    result = runs[name]
    assert result.returncode == 2, result.stderr
    error = parse_event(lines_of(result)[-1])
    assert isinstance(error, ErrorEvent) and error.task == task and error.exit_code == 2
    assert message in error.message and f"geoseg: error: {error.message}" in result.stderr


def test_every_line_validates_against_the_committed_schema(runs: dict[str, Any]) -> None:
    """What the QGIS plugin checks, with the schema file it ships (not the models)."""
    jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (in geoseg's dev extra)")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    lines = [line for name in ("predict", "vectorize", "bad predict", "bad vectorize") for line in lines_of(runs[name])]
    lines.append(lines_of(runs["bad info"])[-1])
    for line in lines + [json_line(e) for e in EXAMPLES]:
        validator.validate(json.loads(line))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"event": "done", "task": "vectorize", "path": "p.gpkg"})


@pytest.mark.slow
def test_train_and_evaluate_emit_only_events(tmp_path: Path) -> None:
    crop = Window(0, 0, 256, 160)
    scene, labels = write_crop(ZION, tmp_path / "s.tif", crop), write_crop(ZION_LABELS, tmp_path / "l.tif", crop)
    config = tiny_config(tmp_path, scene, labels, train={"epochs": 2, "iterations_per_epoch": 2, "batch_size": 4,
                                                         "window": 32, "seed": 0, "threads": 2})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = geoseg("train", tmp_path / "tiny.yaml", "--progress", "json")
    assert result.returncode == 0, result.stderr
    trained = [parse_event(line) for line in lines_of(result)]
    assert [e.event for e in trained if e.event in ("epoch", "done")] == ["epoch", "epoch", "done"]
    done = trained[-1]
    assert isinstance(done, TrainDoneEvent) and Path(done.output).is_file() and done.epochs_run == 2

    result = geoseg("evaluate", done.output, scene, labels, "-o", tmp_path / "report", "--progress", "json")
    assert result.returncode == 0, result.stderr
    evaluated = [parse_event(line) for line in lines_of(result)]
    assert [e.event for e in evaluated[-2:]] == ["done", "metrics"] and evaluated[-2].task == "evaluate"
    assert evaluated[-1].output == str(tmp_path / "report") and evaluated[-1].mean_iou is not None
