"""The command line as users run it: a subprocess, exit codes, one-line errors, JSON progress."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ZION, read_band

COMMANDS = ["predict", "info", "vectorize"]


def geoseg(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command: str | None) -> None:
    result = geoseg(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_predict_json_progress_and_outputs(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "c.tif"
    result = geoseg("predict", ZION, "-o", out, "--model", zion_bundle_path, "--tile", 64, "--overlap", 16,
                    "--progress", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["total"] == events[-1]["tiles_total"]
    assert events[-2]["event"] == "progress" and events[-2]["done"] == events[-2]["total"]
    assert events[-1]["event"] == "done" and events[-1]["output"] == str(out)
    assert read_band(out).shape == (404, 1128)


@pytest.mark.parametrize("args, message", [
    (["predict", "missing.tif", "-o", "{tmp}/o.tif", "--model", "{model}"], "missing.tif: file not found"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{tmp}/none.safetensors"], "none.safetensors: model file not found"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--bands", "x,y"], "--bands x,y"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--bands", "1,2"], "the model expects 4"),
    (["predict", ZION, "-o", "{tmp}/nofolder/o.tif", "--model", "{model}"], "does not exist; create it first"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--device", "tpu"], "unknown device"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--tile", 64, "--overlap", 40], "--overlap 40"),
    (["info", "{tmp}/absent.tif"], "absent.tif: file not found"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--blend", "fancy"], "fancy"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--output-block", 8], "--output-block 8: must be at least 16"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--method", "ndvi-otsu", "--model", "{model}"],
     "--method ndvi-otsu: a classic method takes no --model and writes no --probabilities"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--block-size", 256, "--output-block", 256],
     "--block-size 256: is the old name of --output-block; give only --output-block"),
    (["predict", ZION, "-o", "{tmp}/o.tif", "--model", "{model}", "--score-threshold", 0.3],
     "--score-threshold 0.3: applies to instance models (objects); this model labels pixels"),
    (["predict", ZION, "-o", "{tmp}/o.gpkg", "--method", "bright-objects", "--model", "{model}"],
     "--method bright-objects: a classic method takes no --model"),
    (["predict", ZION, "-o", "{tmp}/o.gpkg", "--method", "bright-objects", "--score-threshold", 2],
     "must be between 0 and 1"),
])
def test_bad_input_exits_2_with_one_line(args: list[object], message: str, tmp_path: Path,
                                         zion_bundle_path: Path) -> None:
    filled = [str(a).format(tmp=tmp_path, model=zion_bundle_path) for a in args]
    result = geoseg(*filled)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    if "Usage" not in result.stderr:  # typer's own usage errors are boxed; ours are one line
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "o.tif").exists()


def test_existing_output_needs_overwrite(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "o.tif"
    out.write_text("keep me")
    result = geoseg("predict", ZION, "-o", out, "--model", zion_bundle_path, "--progress", "json")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "error"
    assert out.read_text() == "keep me"


def test_info_json_describes_model_scene_and_installation(zion_bundle_path: Path) -> None:
    model = json.loads(geoseg("info", zion_bundle_path, "--json").stdout)
    assert [c["name"] for c in model["classes"]] == ["water", "developed", "barren", "forest"]
    assert [b["name"] for b in model["bands"]] == ["blue", "green", "red", "nir"]
    scene = json.loads(geoseg("info", ZION, "--model", zion_bundle_path, "--json").stdout)
    assert scene["crs"] == "EPSG:32612" and scene["count"] == 4 and scene["fits"]["ok"] is True
    setup = json.loads(geoseg("info", "--json").stdout)
    assert setup["devices"][0]["name"] == "cpu" and setup["geoseg_version"]


def test_info_piped_prints_whole_rows_and_names_the_default_model() -> None:
    """Piped (no terminal width), rows are not cut at 80 columns; a network without an encoder is not
    "ContextFCN/None"; the evaluation names files a user has, not one of the training run's folder."""
    from geoseg.model.loading import DEFAULT_MODEL_PATH

    setup = geoseg("info").stdout
    assert "…" not in setup and str(DEFAULT_MODEL_PATH) in setup
    assert "zion_landcover (ContextFCN, 8 classes)" in setup
    model = geoseg("info", DEFAULT_MODEL_PATH).stdout
    assert "zion_landcover (ContextFCN)" in model and "None" not in model and "…" not in model
    evaluated = next(line for line in model.splitlines() if "evaluated_on" in line)
    assert "sample_tiles/zion_landsat8_b2345.tif" in evaluated and "_test.tif" not in evaluated
    assert (Path(__file__).resolve().parents[1] / "sample_tiles" / "zion_landsat8_b2345.tif").is_file()
    assert "water 0.5804, developed 0.0450" in model                # per-class IoU as numbers, not a dict


def test_predict_with_polygons_in_one_run(tmp_path: Path, zion_bundle_path: Path) -> None:
    import pyogrio

    out, polygons = tmp_path / "c.tif", tmp_path / "p.gpkg"
    result = geoseg("predict", ZION, "-o", out, "--model", zion_bundle_path, "--tile", 64, "--overlap", 16,
                    "--polygons", polygons, "--min-area", 9000, "--progress", "json")
    assert result.returncode == 0, result.stderr
    done = [e for e in map(json.loads, result.stdout.splitlines()) if e["event"] == "done"]
    assert [d["task"] for d in done] == ["predict", "vectorize"]
    frame = pyogrio.read_dataframe(polygons)
    assert set(frame.columns) >= {"class_id", "class_name", "area_m2"} and len(frame) > 0
    assert frame.area_m2.min() >= 9000


def test_vectorize_refuses_existing_output(tmp_path: Path) -> None:
    target = tmp_path / "p.gpkg"
    target.write_text("x")
    result = geoseg("vectorize", ZION.parent / "zion_nlcd8.tif", "-o", target)
    assert result.returncode == 2 and "--overwrite" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--block-size", 1], "--block-size 1: must be at least 2 pixels"),
    (["--workers", 0], "--workers 0: must be at least 1"),
    (["--format", "kml"], "--format kml: unknown polygon format"),
    (["--min-area", -5], "--min-area -5.0: must be a number, 0 or more"),
    (["-o", "{tmp}/o.txt"], "or pass --format (gpkg"),
    (["--classes", "lava"], "--classes lava: not a class of"),
])
def test_vectorize_errors_name_flags(args: list[object], message: str, tmp_path: Path) -> None:
    filled = [str(a).format(tmp=tmp_path) for a in args]
    result = geoseg("vectorize", ZION.parent / "zion_nlcd8.tif", "-o", tmp_path / "o.gpkg", *filled)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_vectorize_refuses_a_scene_as_class_map(tmp_path: Path) -> None:
    result = geoseg("vectorize", ZION, "-o", tmp_path / "o.gpkg")
    assert result.returncode == 2 and "has 4 bands; vectorize needs a single-band class map" in result.stderr


def test_public_functions_survive_importing_their_modules(tmp_path: Path, zion_bundle_path: Path) -> None:
    import geoseg
    import geoseg.evaluation.evaluate  # noqa: F401  (importing a module never shadows a public function)
    import geoseg.inference.predictor  # noqa: F401
    import geoseg.training  # noqa: F401
    import geoseg.vector.vectorize  # noqa: F401

    assert all(callable(getattr(geoseg, name)) for name in ("predict", "vectorize", "evaluate", "train"))

    geoseg.predict(ZION, tmp_path / "c.tif", model=zion_bundle_path, tile=64, overlap=16)
    summary = geoseg.vectorize(tmp_path / "c.tif", tmp_path / "p.gpkg")
    assert summary.n_polygons > 0


def test_block_size_is_a_deprecated_alias_of_output_block(tmp_path: Path, zion_bundle_path: Path) -> None:
    common = [ZION, "--model", zion_bundle_path, "--tile", 64, "--overlap", 16]
    new = geoseg("predict", *common, "-o", tmp_path / "new.tif", "--output-block", 256, "--progress", "none")
    old = geoseg("predict", *common, "-o", tmp_path / "old.tif", "--block-size", 256, "--progress", "json")
    assert new.returncode == old.returncode == 0, old.stderr
    warning = [json.loads(line) for line in old.stdout.splitlines() if '"warning"' in line]
    assert warning and "--block-size is deprecated" in warning[0]["message"] and "--output-block" in warning[0]["message"]
    assert (tmp_path / "new.tif").read_bytes() == (tmp_path / "old.tif").read_bytes()
    assert "--block-size" not in geoseg("predict", "--help").stdout
