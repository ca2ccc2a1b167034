"""The worker protocol without QGIS: commands, environment, events, failures, cancel."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from geoseg_qgis.worker import (DetectOptions, PredictOptions, Step, VectorizeOptions,  # noqa: E402
                                WorkerCanceled, WorkerError, WorkerRun, clean_env, detect_steps, disk_warning,
                                info_command, parse_event, predict_command, progress_percent,
                                resolve_interpreter, segment_steps, vectorize_command)


def script(body: str) -> list[str]:
    """A fake worker: ``python -c BODY`` speaking the JSON protocol."""
    prelude = "import json, os, sys, time\ndef emit(**e): print(json.dumps(e), flush=True)\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def test_interpreter_not_set_says_where_to_set_it() -> None:
    with pytest.raises(WorkerError, match=r"interpreter is not set.*'geoseg Python' field.*GEOSEG_PYTHON"):
        resolve_interpreter("", environ={})


def test_interpreter_not_found_names_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "python")
    with pytest.raises(WorkerError, match=r"not found or is not executable"):
        resolve_interpreter(None, environ={"GEOSEG_PYTHON": missing})


def test_setting_wins_over_environment() -> None:
    assert resolve_interpreter(sys.executable, environ={"GEOSEG_PYTHON": "/nope"}) == sys.executable
    assert resolve_interpreter("  ", environ={"GEOSEG_PYTHON": sys.executable}) == sys.executable


def test_clean_env_drops_qgis_gdal_proj_and_python_paths() -> None:
    env = clean_env({"PATH": "/bin", "HOME": "/root", "PROJ_LIB": "x", "PROJ_DATA": "x", "GDAL_DATA": "x",
                     "PYTHONPATH": "/usr/share/qgis/python", "QGIS_PREFIX_PATH": "/usr", "GDAL_CACHEMAX": "512"})
    assert env == {"PATH": "/bin", "HOME": "/root", "GDAL_CACHEMAX": "512", "PYTHONUNBUFFERED": "1",
                   "PYTHONIOENCODING": "utf-8"}


def test_predict_command_passes_only_what_was_chosen() -> None:
    minimal = predict_command("py", PredictOptions(scene="/d/s.tif", output="/d/o.tif"))
    assert minimal == ["py", "-m", "geoseg", "predict", "/d/s.tif", "-o", "/d/o.tif", "--device", "auto",
                       "--overwrite", "--progress", "json"]
    full = predict_command("py", PredictOptions("/d/s.tif", "/d/o.tif", model="/m.safetensors", tile=256,
                                                overlap=0, device="cpu"))
    assert full[7:] == ["--model", "/m.safetensors", "--tile", "256", "--overlap", "0", "--device", "cpu",
                        "--overwrite", "--progress", "json"]


def test_relative_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker runs in another folder, so ``qgis_process ... INPUT=scene.tif`` must still mean ./scene.tif."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert resolve_interpreter("bin/python", {}) == str(python)
    predict, vectorize = segment_steps("py", PredictOptions("s.tif", "o.tif", model="m.safetensors",
                                                            polygons="p.gpkg"))
    assert predict.command[4:10] == [str(tmp_path / "s.tif"), "-o", str(tmp_path / "o.tif"), "--model",
                                     str(tmp_path / "m.safetensors"), "--device"]
    assert vectorize.command[4:7] == [str(tmp_path / "o.tif"), "-o", str(tmp_path / "p.gpkg")]
    assert vectorize.outputs == [str(tmp_path / "p.gpkg")]
    assert info_command("py", "s.tif", "m.safetensors")[4:] == [str(tmp_path / "s.tif"), "--json", "--model",
                                                              str(tmp_path / "m.safetensors")]


def test_polygons_add_a_vectorize_step_on_the_class_map() -> None:
    assert len(segment_steps("py", PredictOptions("s.tif", "o.tif"))) == 1
    predict, vectorize = segment_steps("py", PredictOptions("/s.tif", "/o.tif", polygons="/p.gpkg", min_area=900))
    assert predict.outputs == ["/o.tif"] and vectorize.outputs == ["/p.gpkg"]
    assert vectorize.command[3:9] == ["vectorize", "/o.tif", "-o", "/p.gpkg", "--min-area", "900.0"]


def test_detect_runs_the_instance_model_or_bright_objects() -> None:
    [method] = detect_steps("py", DetectOptions("/d/s.tif", "/d/objects.gpkg"))
    assert method.command == ["py", "-m", "geoseg", "predict", "/d/s.tif", "-o", "/d/objects.gpkg", "--method",
                              "bright-objects", "--device", "auto", "--overwrite", "--progress", "json"]
    assert method.outputs == ["/d/objects.gpkg"]
    [model] = detect_steps("py", DetectOptions("/d/s.tif", "/d/objects.gpkg", model="/m.safetensors", tile=512,
                                               overlap=128, device="cpu", score_threshold=0.0,
                                               instances_raster="/d/ids.tif"))
    assert model.command[7:] == ["--model", "/m.safetensors", "--score-threshold", "0.0", "--instances-raster",
                                 "/d/ids.tif", "--tile", "512", "--overlap", "128", "--device", "cpu",
                                 "--overwrite", "--progress", "json"]
    assert model.outputs == ["/d/objects.gpkg", "/d/ids.tif"]  # a canceled run removes both


def test_vectorize_command() -> None:
    cmd = vectorize_command("py", VectorizeOptions("/c.tif", "/p.gpkg", min_area=100, simplify=15, dissolve=True))
    assert cmd == ["py", "-m", "geoseg", "vectorize", "/c.tif", "-o", "/p.gpkg", "--min-area", "100.0",
                   "--simplify", "15.0", "--dissolve", "--overwrite", "--progress", "json"]


def test_parse_event_ignores_stray_output() -> None:
    assert parse_event('{"event": "progress", "done": 1, "total": 4}\n') == {"event": "progress", "done": 1,
                                                                             "total": 4}
    assert parse_event("Downloading weights...") is None
    assert parse_event('{"not": "an event"}') is None
    assert parse_event("{broken") is None
    assert progress_percent({"event": "progress", "done": 1, "total": 4}) == 25.0
    assert progress_percent({"event": "start", "total": 4}) is None


def test_run_reports_events_and_logs_stderr(tmp_path: Path) -> None:
    cmd = script("""
        emit(event="start", task="predict", total=2, unit="tiles")
        print("a stray line that is not JSON")
        sys.stderr.write("loading model\\n")
        emit(event="progress", task="predict", done=2, total=2)
        emit(event="done", task="predict", output="o.tif")
    """)
    events: list[str] = []
    percents: list[float] = []
    steps = [Step(cmd, [], 3.0), Step(cmd, [], 1.0)]
    result = WorkerRun(steps, tmp_path / "run.log").run(lambda e: events.append(e["event"]),
                                                        on_progress=percents.append)
    assert [d["output"] for d in result.dones] == ["o.tif", "o.tif"]
    assert events == ["start", "progress", "done"] * 2
    assert percents == [75.0, 100.0]
    assert "loading model" in (tmp_path / "run.log").read_text()


def test_bad_input_shows_geoseg_message_and_log_and_removes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    cmd = script(f"""
        open({str(out)!r}, "w").write("partial")
        sys.stderr.write("scene.tif: 3 bands, the model expects 4 (blue, green, red, nir)\\n")
        emit(event="error", message="scene.tif: 3 bands, the model expects 4 (blue, green, red, nir)",
             exit_code=2)
        sys.exit(2)
    """)
    log = tmp_path / "run.log"
    with pytest.raises(WorkerError) as err:
        WorkerRun([Step(cmd, [str(out)])], log).run()
    assert str(err.value) == f"scene.tif: 3 bands, the model expects 4 (blue, green, red, nir) (worker log: {log})"
    assert not out.exists()


def test_older_geoseg_without_the_command(tmp_path: Path) -> None:
    cmd = script("""
        sys.stderr.write("Usage: geoseg [OPTIONS] COMMAND [ARGS]...\\n╭─ Error ─────╮\\n"
                         "│ No such command 'vectorize'.  │\\n╰─────────────╯\\n")
        sys.exit(2)
    """)
    with pytest.raises(WorkerError, match=r"older than this plugin \(No such command 'vectorize'.\): update"):
        WorkerRun([Step(cmd, [])], tmp_path / "run.log").run()


def test_geoseg_not_installed(tmp_path: Path) -> None:
    cmd = script('sys.stderr.write(sys.executable + ": No module named geoseg\\n"); sys.exit(1)')
    with pytest.raises(WorkerError, match=r"geoseg is not installed for .*pip install geoseg"):
        WorkerRun([Step(cmd, [])], tmp_path / "run.log").run()


def test_out_of_disk(tmp_path: Path) -> None:
    cmd = script('sys.stderr.write("OSError: [Errno 28] No space left on device\\n"); sys.exit(1)')
    with pytest.raises(WorkerError, match=r"out of disk space.*another disk"):
        WorkerRun([Step(cmd, [])], tmp_path / "run.log").run()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_crash_by_signal(tmp_path: Path) -> None:
    cmd = script('import signal; emit(event="start", total=3); os.kill(os.getpid(), signal.SIGKILL)')
    with pytest.raises(WorkerError, match=r"worker crashed: killed by SIGKILL \(.*out of memory"):
        WorkerRun([Step(cmd, [])], tmp_path / "run.log").run()


def test_cancel_removes_what_the_run_wrote_and_keeps_the_rest(tmp_path: Path) -> None:
    out, gpkg, other = tmp_path / "o.tif", tmp_path / "o.gpkg", tmp_path / "keep.tif"
    other.write_text("not ours")
    gpkg.write_text("an older result the run had not replaced yet")
    old = os.stat(gpkg).st_mtime
    first = script(f"open({str(out)!r}, 'w').write('finished class map'); emit(event='done', output='o.tif')")
    cmd = script(f"""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stubborn worker: killed after the grace period
        open({str(tmp_path / '.o.tmp-1234abcd.gpkg')!r}, "w").write("partial")
        emit(event="start", total=100)
        for i in range(100):
            emit(event="progress", done=i + 1, total=100)
            time.sleep(0.2)
    """)
    run = WorkerRun([Step(first, [str(out)]), Step(cmd, [str(gpkg)])], tmp_path / "logs" / "run.log")
    run.GRACE_S = 0.5
    events: list[dict] = []
    with pytest.raises(WorkerCanceled):
        run.run(events.append, is_canceled=lambda: len(events) >= 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif", "logs", "o.gpkg"]
    assert os.stat(gpkg).st_mtime == old


def test_disk_warning(tmp_path: Path) -> None:
    assert disk_warning(str(tmp_path), 10, 10) is None
    assert "out of disk space ahead" in disk_warning(str(tmp_path), 10**9, 10**9)


def test_worker_runs_outside_the_callers_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``geoseg`` folder where QGIS was started must not shadow the installed package."""
    (tmp_path / "shadow_probe.py").write_text("")
    monkeypatch.chdir(tmp_path)
    probe = "import importlib.util as u; emit(event='done', shadowed=u.find_spec('shadow_probe') is not None)"
    assert WorkerRun([Step(script(probe), [])], tmp_path / "run.log").run().dones[0]["shadowed"] is False


# ---------------------------------------------------------------------- a real geoseg, events checked
def test_real_segment_run_sends_schema_events_with_shared_keys(geoseg_python: str, model: dict, sample_tile: Path,
                                                                checked_events: list[dict], tmp_path: Path) -> None:
    classes, polygons = tmp_path / "c.tif", tmp_path / "c.gpkg"
    opts = PredictOptions(str(sample_tile), str(classes), model=model["path"], tile=64, overlap=16, device="cpu",
                          polygons=str(polygons))
    result = WorkerRun(segment_steps(geoseg_python, opts), tmp_path / "run.log").run()
    assert [(d["task"], d["output"]) for d in result.dones] == [("predict", str(classes)),
                                                                ("vectorize", str(polygons))]
    predicted, vectorized = (d["area_m2_per_class"] for d in result.dones)
    assert predicted and vectorized.keys() == predicted.keys()
    assert {e["event"] for e in checked_events} >= {"start", "progress", "done"}


def test_real_refusal_arrives_as_a_schema_error_event(geoseg_python: str, model: dict, checked_events: list[dict],
                                                      tmp_path: Path) -> None:
    opts = PredictOptions(str(tmp_path / "missing.tif"), str(tmp_path / "c.tif"), model=model["path"],
                          device="cpu")
    with pytest.raises(WorkerError, match=r"missing.tif: file not found"):
        WorkerRun(segment_steps(geoseg_python, opts), tmp_path / "run.log").run()
    assert [(e["event"], e["task"], e["exit_code"]) for e in checked_events] == [("error", "predict", 2)]
