"""Objects end to end, as users run them: the classic baseline, evaluation reports and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely

from geoseg.classic import BrightObjects
from geoseg.evaluation.instances import evaluate_objects
from geoseg.events import parse_event
from tests.objects_stub import ORIGIN, IdDetector, id_meta, write_ids

from .test_cli import geoseg

RECTS = [(40, 60, 24, 16), (300, 90, 20, 30), (310, 330, 26, 18), (150, 500, 16, 16), (600, 600, 30, 20),
         (318, 10, 20, 12)]     # (row, col, height, width); some cross the 320 px tiles' borders


@pytest.fixture
def bright_scene(tmp_path: Path) -> tuple[Path, Path]:
    """A 0.5 m scene of bright rectangles on a noisy background, and their footprints."""
    rng = np.random.default_rng(0)
    data = rng.normal(100, 4, (700, 700)).astype(np.float32)
    for y, x, h, w in RECTS:
        data[y:y + h, x:x + w] += 120
    path = tmp_path / "bright.tif"
    with rasterio.open(path, "w", driver="GTiff", width=700, height=700, count=1, dtype="float32",
                       crs="EPSG:32633", transform=ORIGIN) as ds:
        ds.write(data, 1)
    boxes = [shapely.box(*(ORIGIN @ (x, y + h)), *(ORIGIN @ (x + w, y))) for y, x, h, w in RECTS]
    footprints = tmp_path / "footprints.geojson"
    gpd.GeoDataFrame({"name": [f"b{i}" for i in range(len(boxes))]}, geometry=boxes, crs="EPSG:32633").to_file(
        footprints)
    return path, footprints


def test_bright_objects_finds_each_bright_object_once(bright_scene: tuple[Path, Path], tmp_path: Path) -> None:
    scene, footprints = bright_scene
    method = BrightObjects.for_scene(scene)
    assert method.meta.tile_size < 700                   # several tiles: objects cross their borders
    report = evaluate_objects(method, scene, footprints, tmp_path / "report", score_threshold=0.0)
    assert (report.scores.true_positives, report.scores.predictions) == (len(RECTS), len(RECTS))
    assert report.scores.f1 == 1.0 and report.scores.ap50 == pytest.approx(1.0)


def test_report_of_a_perfect_and_a_shifted_detector(tmp_path: Path) -> None:
    """The stub sees the painted objects: F1 and AP are 1; against footprints moved by half an object
    (IoU 1/3) nothing matches at 0.5, and the report says so in every file."""
    ids = np.zeros((128, 160), np.uint32)
    for k, (y, x) in enumerate([(10, 10), (10, 60), (60, 30), (90, 120), (40, 140)], start=1):
        ids[y:y + 12, x:x + 14] = k
    scene = write_ids(tmp_path / "ids.tif", ids)
    boxes = [shapely.box(*(ORIGIN @ (x0, y1)), *(ORIGIN @ (x1, y0))) for y0, y1, x0, x1 in
             ((np.flatnonzero((ids == k).any(1))[[0, -1]] + [0, 1]).tolist() +
              (np.flatnonzero((ids == k).any(0))[[0, -1]] + [0, 1]).tolist() for k in range(1, 6))]
    exact = tmp_path / "exact.gpkg"
    gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32633").to_file(exact)
    shifted = tmp_path / "shifted.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.affinity.translate(b, 3.5) for b in boxes], crs="EPSG:32633").to_file(shifted)
    good = evaluate_objects(IdDetector(id_meta(64, 16)), scene, exact, tmp_path / "good", score_threshold=0.0)
    assert (good.scores.f1, good.scores.ap50, good.scores.ap) == (1.0, pytest.approx(1.0), pytest.approx(1.0))
    bad = evaluate_objects(IdDetector(id_meta(64, 16)), scene, shifted, tmp_path / "bad", score_threshold=0.0)
    assert bad.scores.true_positives == 0 and bad.scores.f1 == 0.0 and bad.scores.ap50 == 0.0
    metrics = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    assert metrics["false_negatives"] == 5 and metrics["per_size"]["small"]["references"] == 5
    assert "| 0.000 |" in (tmp_path / "bad" / "report.md").read_text()
    assert (tmp_path / "bad" / "preview.png").stat().st_size > 10_000
    assert len(pyogrio.read_dataframe(tmp_path / "bad" / "objects.gpkg")) == 5


def test_footprints_that_miss_the_scene_are_refused_before_predicting(tmp_path: Path) -> None:
    scene = write_ids(tmp_path / "ids.tif", np.ones((32, 32), np.uint32))
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32633").to_file(far)
    detector = IdDetector(id_meta(32, 8))
    with pytest.raises(Exception, match="no footprint polygon falls on"):
        evaluate_objects(detector, scene, far, tmp_path / "r")
    assert detector.calls == 0 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_cli_objects_with_the_classic_method(bright_scene: tuple[Path, Path], tmp_path: Path) -> None:
    scene, footprints = bright_scene
    out, ids = tmp_path / "objects.fgb", tmp_path / "ids.tif"
    result = geoseg("predict", scene, "-o", out, "--method", "bright-objects", "--instances-raster", ids,
                    "--score-threshold", "0", "--progress", "json")
    assert result.returncode == 0, result.stderr
    events = [parse_event(line) for line in result.stdout.splitlines()]
    assert events[0].task == "detect" and events[-1].event == "done" and events[-1].n_objects == len(RECTS)
    assert len(pyogrio.read_dataframe(out)) == len(RECTS)
    with rasterio.open(ids) as ds:
        assert len(np.unique(ds.read(1))) == len(RECTS) + 1
    refused = geoseg("predict", scene, "-o", tmp_path / "x.gpkg", "--method", "bright-objects", "--probabilities",
                     tmp_path / "p.tif")
    assert refused.returncode == 2 and "--probabilities" in refused.stderr and "Traceback" not in refused.stderr
    report = geoseg("evaluate", "bright-objects", scene, footprints, "-o", tmp_path / "report", "--progress", "json")
    assert report.returncode == 0, report.stderr
    metrics = json.loads(report.stdout.splitlines()[-1])
    assert metrics["event"] == "metrics" and metrics["f1"] > 0.5 and metrics["mean_iou"] is None


def test_classic_baseline_on_spacenet(spacenet: tuple[Path, Path], tmp_path: Path) -> None:
    """The baseline a building model must beat, on the 43 SpaceNet footprints (F1@0.5 is ~0 for it: roofs
    there are as often darker than their surroundings as brighter; recorded in docs/instances.md)."""
    chip, footprints = spacenet
    report = evaluate_objects("bright-objects", chip, footprints, tmp_path / "report")
    assert report.scores.references == 43
    assert 0.0 <= report.scores.f1 <= 1.0 and report.scores.predictions > 0


@pytest.mark.slow
def test_cli_dispatches_on_an_instance_bundle(tmp_path: Path) -> None:
    """A real (tiny, untrained) Mask R-CNN bundle: predict and evaluate find objects because the bundle says
    its task is instance; the semantic-only options are refused in one line."""
    from tests.conftest import tiny_bundle
    from tests.model.test_instance_net import instance_meta

    bundle = tmp_path / "buildings.safetensors"
    tiny_bundle(instance_meta(tile_size=64, overlap=16)).save(bundle)
    rng = np.random.default_rng(1)
    scene = tmp_path / "pan.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=100, height=90, count=1, dtype="uint16",
                       crs="EPSG:32616", transform=ORIGIN) as ds:
        ds.write(rng.normal(400, 150, (90, 100)).clip(1, 4000).astype(np.uint16), 1)
        ds.set_band_description(1, "pan")
    out = tmp_path / "objects.gpkg"
    result = geoseg("predict", scene, "-o", out, "--model", bundle, "--score-threshold", "0.2", "--progress", "json")
    assert result.returncode == 0, result.stderr
    done = parse_event(result.stdout.splitlines()[-1])
    assert done.task == "detect" and done.tiles_total == 4 and done.n_objects == len(pyogrio.read_dataframe(out))
    frame = pyogrio.read_dataframe(out)
    assert list(frame.columns)[:5] == ["instance_id", "class_id", "class_name", "score", "area_m2"]
    assert (frame["score"] >= 0.2).all() and set(frame["class_name"]) <= {"building", "pond"}
    refused = geoseg("predict", scene, "-o", tmp_path / "m.tif", "--model", bundle, "--polygons", tmp_path / "p.gpkg")
    assert refused.returncode == 2 and "--polygons" in refused.stderr
    footprints = tmp_path / "footprints.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(*(ORIGIN @ (10, 30)), *(ORIGIN @ (30, 10)))], crs="EPSG:32616").to_file(
        footprints)
    report = geoseg("evaluate", bundle, scene, footprints, "-o", tmp_path / "report", "--quiet")
    assert report.returncode == 0, report.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["references"] == 1 and metrics["model_file"] == "buildings.safetensors"
