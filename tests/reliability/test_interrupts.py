"""Signals end a CLI run in seconds with one line, the conventional exit code and nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import ZION, tiny_bundle, tiny_meta

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Zion sample tiled 3x3: long enough (many tiles at --tile 64) to be interrupted mid-run."""
    path = tmp_path_factory.mktemp("scene") / "big.tif"
    with rasterio.open(ZION) as src:
        data, profile = src.read(), src.profile.copy()
    data = np.tile(data, (1, 3, 3))
    profile.update(height=data.shape[1], width=data.shape[2], tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _hangup_by_default() -> None:
    """In the child, before geoseg starts: SIGHUP as a terminal's shell leaves it. A test run started under
    nohup (or by a runner that ignores SIGHUP) passes SIG_IGN down, and geoseg rightly keeps ignoring it."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _interrupt(args: list[str], signum: int, folder: Path) -> tuple[int, str, float]:
    """Start ``geoseg ARGS --progress json``, send ``signum`` after the first progress event."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args, "--progress", "json"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_hangup_by_default)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("event") == "progress":
            break
    sent = time.monotonic()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr, time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_predict_ends_cleanly_on_signals(signum: int, big_scene: Path, zion_bundle_path: Path,
                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, stderr, seconds = _interrupt(["predict", str(big_scene), "-o", str(out / "map.tif"), "--model",
                                        str(zion_bundle_path), "--tile", "64", "--overlap", "16",
                                        "--probabilities", str(out / "probs.tif")], signum, tmp_path)
    assert code == 128 + signum, stderr
    assert seconds < 10
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr
    assert list(out.iterdir()) == []                      # no class map, no probabilities, no stage files


@pytest.fixture(scope="module")
def big_class_map(big_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noisy class map of the big scene (a SimpleFCN with random weights): many polygons to vectorize."""
    folder = tmp_path_factory.mktemp("classes")
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0, input_dtype="uint16")
    model = folder / "tiny.safetensors"
    tiny_bundle(meta).save(model)
    out = folder / "classes.tif"
    subprocess.run([sys.executable, "-m", "geoseg", "predict", str(big_scene), "-o", str(out), "--model", str(model),
                    "--progress", "none"], check=True)
    return out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_vectorize_ends_cleanly_and_its_workers_die(signum: int, big_class_map: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, stderr, seconds = _interrupt(["vectorize", str(big_class_map), "-o", str(out / "p.gpkg"),
                                        "--block-size", "256", "--workers", "2"], signum, tmp_path)
    assert code == 128 + signum, stderr
    assert seconds < 10 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert list(out.iterdir()) == []


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (not zombies: a zombie has ended and waits to be reaped)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


def _wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


def _start_vectorize(class_map: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    """vectorize with two worker processes, returned once it reported progress, with its workers' pids."""
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", "vectorize", str(class_map), "-o", str(out),
                             "--block-size", "256", "--workers", "2", "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("event") == "progress":
            break
    return proc, _children(proc.pid)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_vectorize_workers_die_with_a_killed_parent(big_class_map: Path, tmp_path: Path) -> None:
    proc, workers = _start_vectorize(big_class_map, tmp_path / "p.gpkg")
    assert workers, "vectorize started no worker process"
    proc.kill()                                           # SIGKILL: no cleanup code runs in the parent
    proc.communicate(timeout=30)
    assert not _wait_gone(workers), "workers outlived their SIGKILLed parent"


def _only_complete_outputs(folder: Path) -> None:
    """Nothing half-written: a file is there only if it was renamed into place complete (a signal can land
    after the rename, while the run reports its summary)."""
    import pyogrio

    for path in folder.iterdir():
        assert not path.name.startswith("."), f"temporary file left behind: {path.name}"
        if path.suffix == ".tif":
            with rasterio.open(path) as dataset:
                dataset.read(1, out_shape=(1, 8, 8))
        elif path.suffix == ".gpkg":
            assert pyogrio.read_info(path)["features"] > 0
        elif path.suffix == ".json":
            json.loads(path.read_text())                 # the STAC Item
        else:
            assert path.stat().st_size > 0               # .qml style, .aux.xml legend


def _signalled(signum: int) -> tuple[int, int]:
    """Exit codes of a run ended by ``signum``: geoseg's 128+signal, or the signal itself when it came in
    the interpreter's first moments, before any geoseg code ran (nothing was written then)."""
    return 128 + signum, -signum


def _signal_at_random(args: list[str], seed: int, out: Path) -> None:
    """Run ``geoseg ARGS``, signal it at a seeded random moment, and check how it ended: a complete output
    (it finished first), or 128+signal with only complete outputs left; never a hang, a traceback or a
    live worker process."""
    rng = np.random.default_rng(seed)
    signum = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP][seed % 3]
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args, "--progress", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_hangup_by_default)
    time.sleep(float(rng.uniform(0.0, 3.0)))
    workers = _children(proc.pid)
    proc.send_signal(signum)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"geoseg {args[0]} hung after signal {signum}")
    assert not _wait_gone(workers), f"geoseg {args[0]} left worker processes behind"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    if proc.returncode != 0:
        assert proc.returncode in _signalled(signum), stderr
    _only_complete_outputs(out)


@pytest.mark.parametrize("seed", range(10))
def test_predict_survives_signals_at_random_points(seed: int, big_scene: Path, zion_bundle_path: Path,
                                                   tmp_path: Path) -> None:
    """Ten runs, each signalled at a random moment (seeded) between start-up and the end of the run."""
    out = tmp_path / "out"
    out.mkdir()
    _signal_at_random(["predict", str(big_scene), "-o", str(out / "m.tif"), "--model", str(zion_bundle_path),
                       "--tile", "64", "--overlap", "16"], seed, out)


@pytest.mark.parametrize("seed", range(10))
def test_vectorize_survives_signals_at_random_points(seed: int, big_class_map: Path, tmp_path: Path) -> None:
    """Ten runs with two worker processes, each signalled at a random moment (seeded)."""
    out = tmp_path / "out"
    out.mkdir()
    _signal_at_random(["vectorize", str(big_class_map), "-o", str(out / "p.gpkg"), "--block-size", "256",
                       "--workers", "2"], 100 + seed, out)


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_signals_during_start_up_end_with_one_line(delay: float, tmp_path: Path) -> None:
    """While Python imports geoseg, torch and rasterio: still one line and 128+signal, never a silent kill."""
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(tmp_path / "m.tif"),
                             "--progress", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    if proc.returncode == 0:
        return                                            # a fast machine finished first
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    lines = stderr.strip().splitlines()
    assert lines == ["geoseg: error: interrupted (SIGTERM); unfinished outputs were removed"], stderr
    assert not (tmp_path / "m.tif").exists()


def test_concurrent_runs_to_one_target_never_both_succeed(tmp_path: Path, zion_bundle_path: Path) -> None:
    """Two predictions to one path at once, without --overwrite: one map, the other run says it exists."""
    target = tmp_path / "map.tif"
    runs = [subprocess.Popen([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(target), "--model",
                              str(zion_bundle_path), "--tile", "64", "--overlap", "16", "--progress", "none",
                              "--no-qml", "--no-stac"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(proc.wait(timeout=120), proc.communicate()[1]) for proc in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "output exists" in loser and "Traceback" not in loser
    with rasterio.open(target) as dataset:
        assert dataset.read(1).shape == (404, 1128)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["map.tif", "map.tif.aux.xml",
                                                                  zion_bundle_path.name])


def _train_config(tmp_path: Path, epochs: int) -> Path:
    import yaml

    from tests.conftest import ZION_LABELS, tiny_config

    config = tiny_config(tmp_path, ZION, ZION_LABELS)
    config["train"]["epochs"] = epochs
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _temporary_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or ".tmp-" in p.name]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_train_ends_cleanly_on_signals(signum: int, tmp_path: Path) -> None:
    """Mid-epoch: one line, 128+signal, no bundle, no temporary file; the run resumes or restarts."""
    config = _train_config(tmp_path, epochs=40)
    code, stderr, seconds = _interrupt(["train", str(config)], signum, tmp_path)
    assert code == 128 + signum, stderr
    assert seconds < 10
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr
    run = tmp_path / "run"
    assert not (run / "tiny.safetensors").exists() and _temporary_files(run) == []
    resumed = subprocess.run([sys.executable, "-m", "geoseg", "train", str(config), "--resume", "--epochs", "1",
                              "--progress", "none"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "tiny.safetensors").is_file()


@pytest.mark.parametrize("seed", range(3))
def test_train_survives_signals_at_random_points(seed: int, tmp_path: Path) -> None:
    """Signalled at a random moment, even while saving a checkpoint: what is left resumes, or says why not."""
    config = _train_config(tmp_path, epochs=3)
    run = tmp_path / "run"
    _signal_at_random(["train", str(config)], 200 + seed, tmp_path)
    assert _temporary_files(tmp_path) == []
    resumed = subprocess.run([sys.executable, "-m", "geoseg", "train", str(config), "--resume", "--progress", "none"],
                             capture_output=True, text=True, timeout=300)
    if resumed.returncode != 0:      # stopped between the checkpoint's two files: a one-line refusal, nothing lost
        assert resumed.returncode == 2 and "different epochs" in resumed.stderr, resumed.stderr
        assert len(resumed.stderr.strip().splitlines()) == 1
    else:
        assert (run / "tiny.safetensors").is_file()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_evaluate_ends_cleanly_on_signals(signum: int, big_scene: Path, zion_bundle_path: Path,
                                          tmp_path: Path) -> None:
    from tests.conftest import ZION_LABELS

    code, stderr, seconds = _interrupt(["evaluate", str(zion_bundle_path), str(big_scene), str(ZION_LABELS),
                                        "-o", str(tmp_path / "report"), "--ignore-ids", "5,6,7,8"], signum, tmp_path)
    assert code == 128 + signum, stderr
    assert seconds < 10
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr
    assert not (tmp_path / "report").exists()            # the folder it created, removed with its files


def test_an_error_after_a_signal_is_reported_as_the_interrupt() -> None:
    """A signal that lands inside third-party code (an import) may come back as another error: still the
    interrupt's one line and 128+signal, not "internal error"."""
    code = ("import os, signal, sys\n"
            "from geoseg import cli\n"
            "@cli.reports_errors\n"
            "def command(progress=None):\n"
            "    try:\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "    except KeyboardInterrupt:\n"
            "        pass                          # swallowed, as a C extension mid-import may do\n"
            "    raise AttributeError(\"module 'numpy._core' has no attribute '_multiarray_umath'\")\n"
            "cli.raise_on_signals()\n"
            "try:\n"
            "    command()\n"
            "except cli.typer.Exit as done:           # what typer does with it in the real CLI\n"
            "    sys.exit(done.exit_code)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().splitlines() == ["geoseg: error: interrupted (SIGTERM); unfinished outputs were removed"]
