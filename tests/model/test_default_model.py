"""The embedded default model: it ships, loads, describes itself and scores what its metadata promises."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from geoseg.model.loading import DEFAULT_MODEL_PATH, read_meta
from geoseg.evaluation.evaluate import evaluate
from geoseg.model.loading import load_model
from tests.conftest import NLCD, ZION, ZION_LABELS

TOLERANCE = 0.01


def test_default_model_ships_small_with_credits() -> None:
    assert DEFAULT_MODEL_PATH.is_file()
    assert DEFAULT_MODEL_PATH.stat().st_size < 25e6
    credits = (DEFAULT_MODEL_PATH.parent / "CREDITS.md").read_text()
    assert "USGS" in credits and "NLCD" in credits


def test_default_model_loads_and_describes_itself() -> None:
    bundle = load_model(None)
    bundle.build()
    meta = bundle.meta
    assert [c.name for c in meta.scheme.classes] == [n for n, _ in NLCD]
    assert [b.name for b in meta.bands] == ["blue", "green", "red", "nir"]
    assert meta.gsd == pytest.approx(30.0) and meta.input_dtype == "uint16"
    assert meta.provenance["config"]["test"]["start"] == 1024             # the block sample_tiles/ holds
    assert "test block" in meta.metrics["evaluated_on"][0]               # scored where it was not selected
    run = subprocess.run([sys.executable, "-m", "geoseg", "info", str(DEFAULT_MODEL_PATH), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    described = json.loads(run.stdout)
    assert described["name"] == "zion_landcover" and described["metrics"]["mean_iou"] == meta.metrics["mean_iou"]


def test_default_model_reaches_its_recorded_metrics_on_the_sample_tile(tmp_path: Path) -> None:
    recorded = read_meta(DEFAULT_MODEL_PATH).metrics
    result = evaluate(None, ZION, ZION_LABELS, tmp_path / "report")
    scores = result.scores
    for name in ("report.md", "metrics.json"):             # portable: no path of this machine inside
        text = result.files[name].read_text()
        assert str(tmp_path) not in text and str(ZION.parent) not in text and "/" not in json.dumps(
            {k: v for k, v in json.loads(result.files["metrics.json"].read_text()).items()
             if k in ("model", "model_file", "scene", "labels")})
    wetlands = next(c for c in scores.per_class if c.name == "wetlands")
    assert wetlands.support == 6849 and wetlands.predicted == 0        # shown as "–" for precision, and said so
    assert "never predicted (wetlands)" in result.files["report.md"].read_text()
    assert scores.pixels == 404 * 1128
    assert scores.mean_iou == pytest.approx(recorded["mean_iou"], abs=TOLERANCE)
    assert scores.overall_accuracy == pytest.approx(recorded["overall_accuracy"], abs=TOLERANCE)
    for per_class in scores.per_class:
        assert per_class.iou == pytest.approx(recorded["per_class_iou"][per_class.name], abs=3 * TOLERANCE)
