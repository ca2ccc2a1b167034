# SPDX-License-Identifier: GPL-2.0-or-later
"""Drive ``python -m geoseg`` in a subprocess: commands, a clean environment, JSON progress, cancel.

Pure Python (no QGIS import) so that it is unit-testable anywhere. The QGIS process never imports geoseg
or torch: QGIS ships its own GDAL/PROJ/numpy, and mixing them with geoseg's wheels is the dependency hell
users of other plugins complain about. geoseg runs with the interpreter of its own environment instead.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Variables QGIS sets for its own GDAL/PROJ/Python; inherited by the worker they make rasterio/pyproj
#: wheels read the wrong data files or import QGIS's site-packages.
STRIPPED_ENV = frozenset({
    "PROJ_DATA", "PROJ_LIB", "PROJ_NETWORK", "GDAL_DATA", "GDAL_DRIVER_PATH", "GDAL_PAM_PROXY_DIR",
    "GDAL_FILENAME_IS_UTF8", "GDAL_SKIP", "GEOTIFF_CSV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
    "PYTHONEXECUTABLE", "QT_PLUGIN_PATH", "O4W_QT_PREFIX", "OSGEO4W_ROOT",
})
STRIPPED_PREFIXES = ("QGIS_",)
#: ``python -m`` puts the working directory first on sys.path: QGIS's (a user's project folder, maybe a
#: geoseg checkout) could shadow the installed geoseg, so the worker runs in a neutral folder instead.
WORKER_CWD = tempfile.gettempdir()
ENV_VAR = "GEOSEG_PYTHON"
#: Where a user sets the interpreter; every message about it points there.
DIALOG = "Raster > geoseg > Segment raster"
WHERE = f"the 'geoseg Python' field of {DIALOG}"
_DISK_FULL = ("no space left on device", "errno 28", "enospc", "disk full")
#: geoseg's atomic outputs write ``.<stem>.tmp-<host>-<pid>-<hex><suffix>`` beside the target
#: (geoseg/io/outputs.py).
_TMP_GLOB = ".{stem}.tmp-*"


#: The package a new environment installs (what the README tells users to ``pip install``).
PACKAGE = "geoseg"


class WorkerError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        if log_path is not None:
            message = f"{message} (worker log: {log_path})"
        super().__init__(message)
        self.log_path = log_path


class WorkerCanceled(Exception):
    """The user canceled; outputs of the run have been removed."""


def resolve_interpreter(configured: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The geoseg interpreter: the plugin setting, else ``GEOSEG_PYTHON``; an error that says how to set it."""
    path = (configured or "").strip() or environ.get(ENV_VAR, "").strip()
    if not path:
        raise WorkerError(
            f"geoseg's Python interpreter is not set: choose the python executable of the environment where "
            f"geoseg is installed in {WHERE} (or set {ENV_VAR})")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise WorkerError(
            f"geoseg's Python interpreter {path!r} was not found or is not executable: fix the path in "
            f"{WHERE} (or {ENV_VAR})")
    return os.path.abspath(path)


def venv_python(folder: str | Path) -> str:
    """The interpreter of the virtual environment in ``folder`` (``Scripts\\python.exe`` on Windows)."""
    folder = Path(folder)
    return str(folder / "Scripts" / "python.exe" if sys.platform == "win32" else folder / "bin" / "python")


def is_environment(python: str) -> bool:
    """Whether ``python`` belongs to a virtual environment or a conda environment, where pip may install.

    A system Python (Debian's /usr/bin/python3, Homebrew's, ...) refuses ``pip install`` as an
    "externally-managed-environment" (PEP 668); telling its users to pip install there sends them into it.
    """
    exe = Path(python)
    return any((prefix / "pyvenv.cfg").is_file() or (prefix / "conda-meta").is_dir()
               for prefix in (exe.parent, exe.parent.parent))


def install_advice(python: str) -> str:
    """How to get geoseg for ``python``: pip into an environment, else make an environment for it."""
    if is_environment(python):
        return (f"install it there (`{python} -m pip install {PACKAGE}`) or choose the interpreter of your "
                f"geoseg environment in {WHERE}")
    windows = sys.platform == "win32"
    folder = "%USERPROFILE%\\geoseg-env" if windows else "~/geoseg-env"
    env = f"{folder}\\Scripts\\python.exe" if windows else f"{folder}/bin/python"
    return (f"it is not a virtual environment, and system Pythons refuse pip installs (externally managed). "
            f"Make an environment for geoseg: press 'New environment…' in {DIALOG}, or run "
            f"`{'python' if windows else 'python3'} -m venv {folder}` and `{env} -m pip install {PACKAGE}`, "
            f"then choose {env} in {WHERE}")


def clean_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's environment: the user's, minus QGIS's GDAL/PROJ/Python variables; unbuffered UTF-8."""
    env = {k: v for k, v in environ.items()
           if k not in STRIPPED_ENV and not k.startswith(STRIPPED_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def info_command(python: str, path: str | None = None, model: str | None = None) -> list[str]:
    """``geoseg info [PATH] --json [--model M]``: environment, a model bundle, or a scene's fit to a model."""
    cmd = [python, "-m", "geoseg", "info"]
    if path:
        cmd.append(_abs(path))
    cmd.append("--json")
    if model:
        cmd += ["--model", _abs(model)]
    return cmd


@dataclass(frozen=True)
class RunOptions:
    """The scene, output, model and engine settings of a run; ``None`` means the model's default."""

    scene: str
    output: str
    model: str | None = None
    tile: int | None = None
    overlap: int | None = None
    device: str = "auto"


@dataclass(frozen=True)
class PredictOptions(RunOptions):
    """What the dialog and the Processing algorithm ask of a class map (and its polygons)."""

    polygons: str | None = None
    min_area: float | None = None


#: The training-free object method of ``geoseg predict --method`` (objects brighter than their surroundings).
OBJECT_METHOD = "bright-objects"


@dataclass(frozen=True)
class DetectOptions(RunOptions):
    """A "detect objects" run: ``model`` an instance bundle (its metadata says ``task: instance``), or
    ``OBJECT_METHOD`` when ``model`` is ``None``."""

    score_threshold: float | None = None
    instances_raster: str | None = None


@dataclass(frozen=True)
class VectorizeOptions:
    """What ``geoseg vectorize`` is asked: a class map to polygons."""

    classmap: str
    output: str
    min_area: float | None = None
    simplify: float | None = None
    dissolve: bool = False


@dataclass(frozen=True)
class Step:
    """One worker command, the files it writes, and its share of the progress bar."""

    command: list[str]
    outputs: list[str]
    weight: float = 1.0


def predict_command(python: str, opts: PredictOptions) -> list[str]:
    """The ``geoseg predict`` command line (always ``--overwrite``: the user chose the path already)."""
    cmd = [python, "-m", "geoseg", "predict", _abs(opts.scene), "-o", _abs(opts.output)]
    if opts.model:
        cmd += ["--model", _abs(opts.model)]
    return cmd + _engine_args(opts.tile, opts.overlap, opts.device)


def detect_command(python: str, opts: DetectOptions) -> list[str]:
    """``geoseg predict`` finding objects: with an instance model it writes polygons, not a class map."""
    cmd = [python, "-m", "geoseg", "predict", _abs(opts.scene), "-o", _abs(opts.output)]
    cmd += ["--model", _abs(opts.model)] if opts.model else ["--method", OBJECT_METHOD]
    if opts.score_threshold is not None:
        cmd += ["--score-threshold", repr(float(opts.score_threshold))]
    if opts.instances_raster:
        cmd += ["--instances-raster", _abs(opts.instances_raster)]
    return cmd + _engine_args(opts.tile, opts.overlap, opts.device)


def detect_steps(python: str, opts: DetectOptions) -> list[Step]:
    """One command; a canceled or failed run removes the polygons and the id raster alike."""
    outputs = [_abs(p) for p in (opts.output, opts.instances_raster) if p]
    return [Step(detect_command(python, opts), outputs)]


def _engine_args(tile: int | None, overlap: int | None, device: str) -> list[str]:
    """Tile, overlap (``None``: the model's) and device, then the options every plugin run passes."""
    cmd = ["--tile", str(tile)] if tile else []
    if overlap is not None:
        cmd += ["--overlap", str(overlap)]
    return cmd + ["--device", device, "--overwrite", "--progress", "json"]


def vectorize_command(python: str, opts: VectorizeOptions) -> list[str]:
    """The ``geoseg vectorize`` command line for ``opts``."""
    cmd = [python, "-m", "geoseg", "vectorize", _abs(opts.classmap), "-o", _abs(opts.output)]
    if opts.min_area:
        cmd += ["--min-area", repr(float(opts.min_area))]
    if opts.simplify:
        cmd += ["--simplify", repr(float(opts.simplify))]
    if opts.dissolve:
        cmd.append("--dissolve")
    return cmd + ["--overwrite", "--progress", "json"]


def _abs(path: str) -> str:
    """Paths as the user meant them: the worker runs in another folder (``WORKER_CWD``)."""
    return os.path.abspath(path)


def segment_steps(python: str, opts: PredictOptions) -> list[Step]:
    """Predict, then vectorize the class map when polygons are asked for (two commands, one run)."""
    if not opts.polygons:
        return [Step(predict_command(python, opts), [_abs(opts.output)])]
    vectorize = VectorizeOptions(opts.output, opts.polygons, opts.min_area)
    return [Step(predict_command(python, opts), [_abs(opts.output)], 0.8),
            Step(vectorize_command(python, vectorize), [_abs(opts.polygons)], 0.2)]


def parse_event(line: str) -> dict[str, Any] | None:
    """One protocol object from a stdout line, or ``None`` for anything else (stray prints, warnings).

    geoseg's events are described by ``events.schema.json`` beside this module (generated from
    geoseg/events.py); the plugin's tests check every event a real geoseg sends against it.
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def progress_percent(event: Mapping[str, Any]) -> float | None:
    """0-100 for a ``progress`` event with a total, else ``None``."""
    total = event.get("total") or 0
    if event.get("event") != "progress" or total <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * float(event.get("done", 0)) / float(total)))


def failure_message(returncode: int, stderr_tail: str, error_event: Mapping[str, Any] | None,
                    python: str, log_path: Path | None) -> WorkerError:
    """Turn a failed worker into the message a user can act on (see qgis_plugin/README.md)."""
    text = stderr_tail.lower()
    if "no module named geoseg" in text or "no module named 'geoseg'" in text:
        return WorkerError(f"geoseg is not installed for {python}: {install_advice(python)}", log_path)
    if any(k in text for k in _DISK_FULL) or (error_event and any(
            k in str(error_event.get("message", "")).lower() for k in _DISK_FULL)):
        return WorkerError("out of disk space while writing the outputs: free some space or choose an "
                           "output folder on another disk", log_path)
    if error_event and error_event.get("message"):
        return WorkerError(str(error_event["message"]), log_path)
    if returncode == 0:
        return WorkerError(f"geoseg in {python} ended without reporting a result: it may be older than "
                           "this plugin; update geoseg there", log_path)
    if returncode == 2:
        last = _last_line(stderr_tail)
        if "no such command" in text or "no such option" in text:
            return WorkerError(f"geoseg in {python} is older than this plugin ({last}): update geoseg there",
                               log_path)
        return WorkerError(last or "geoseg refused the input", log_path)
    if returncode < 0:
        name = _signal_name(-returncode)
        hint = " (the system may have run out of memory: try a smaller tile)" if name == "SIGKILL" else ""
        return WorkerError(f"the geoseg worker crashed: killed by {name}{hint}", log_path)
    last = _last_line(stderr_tail)
    return WorkerError(f"the geoseg worker crashed (exit code {returncode})"
                       + (f": {last}" if last else "") + "; please report it with the log", log_path)


def _last_line(text: str) -> str:
    """The last line that says something (typer draws usage errors inside a box of these characters)."""
    lines = [ln.strip(" \t│╭╮╰╯─") for ln in text.splitlines()]
    lines = [ln for ln in lines if any(c.isalnum() for c in ln)]
    return lines[-1] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def disk_warning(folder: str, width: int, height: int) -> str | None:
    """A warning when ``folder`` has less free space than an uncompressed uint8 class map (the worst case)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    need = width * height
    if free >= need:
        return None
    return (f"out of disk space ahead: {free / 1e6:.0f} MB free in {folder}, the class map may need up to "
            f"{need / 1e6:.0f} MB; free some space or choose another output folder")


def output_state(paths: Sequence[str]) -> dict[str, tuple[float, int] | None]:
    """(mtime, size) of each output before a run, so that cancel removes only what the run wrote."""
    state: dict[str, tuple[float, int] | None] = {}
    for p in paths:
        try:
            st = os.stat(p)
            state[p] = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            state[p] = None
    return state


def remove_run_outputs(before: Mapping[str, tuple[float, int] | None]) -> list[str]:
    """Remove outputs a canceled or failed run created or replaced, and geoseg's temporary files."""
    removed: list[str] = []
    for path, old in before.items():
        final = Path(path)
        candidates = list(final.parent.glob(_TMP_GLOB.format(stem=final.stem)))
        if final.exists() and output_state([path])[path] != old:
            candidates.append(final)
            candidates += [Path(str(final) + s) for s in (".aux.xml", ".ovr", "-wal", "-shm")]
        for c in candidates:
            if c.exists():
                c.unlink()
                removed.append(str(c))
    return removed


@dataclass
class WorkerResult:
    """A finished run: the ``done`` event (summary) of each step, and where the log is."""

    dones: list[dict[str, Any]]
    log_path: Path
    seconds: float


class WorkerRun:
    """Steps of ``python -m geoseg ...``, one after the other: stdout parsed as JSON events, stderr to a log.

    ``run`` blocks (call it from a QgsTask or a Processing algorithm, never the GUI thread); it polls
    ``is_canceled`` between lines so that Cancel acts within a fraction of a second. A canceled or failed
    run removes every output of every step, including those an earlier step completed.
    """

    POLL_S = 0.1
    GRACE_S = 5.0

    def __init__(self, steps: Sequence[Step], log_path: Path, environ: Mapping[str, str] = os.environ) -> None:
        self.steps = list(steps)
        self.log_path = Path(log_path)
        self.env = clean_env(environ)

    @property
    def python(self) -> str:
        return self.steps[0].command[0]

    def describe(self) -> str:
        return " && ".join(" ".join(step.command) for step in self.steps)

    def run(self, on_event: Callable[[dict[str, Any]], None] = lambda e: None,
            is_canceled: Callable[[], bool] = lambda: False,
            on_progress: Callable[[float], None] = lambda p: None) -> WorkerResult:
        """Run every step; raise ``WorkerCanceled`` or ``WorkerError`` (all outputs removed) otherwise."""
        before = output_state([p for step in self.steps for p in step.outputs])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        total = sum(step.weight for step in self.steps) or 1.0
        offset = 0.0
        dones = []
        with open(self.log_path, "w", encoding="utf-8", errors="replace") as log:
            for step in self.steps:
                def forward(event: dict[str, Any], offset: float = offset, weight: float = step.weight) -> None:
                    on_event(event)
                    percent = progress_percent(event)
                    if percent is not None:
                        on_progress(100.0 * (offset + weight * percent / 100.0) / total)

                try:
                    dones.append(self._step(step, log, forward, is_canceled))
                except (WorkerCanceled, WorkerError):
                    remove_run_outputs(before)
                    raise
                offset += step.weight
        return WorkerResult(dones=dones, log_path=self.log_path, seconds=time.perf_counter() - t0)

    def _step(self, step: Step, log: Any, on_event: Callable[[dict[str, Any]], None],
              is_canceled: Callable[[], bool]) -> dict[str, Any]:
        log.write("$ " + " ".join(step.command) + "\n")
        log.flush()
        proc = self._start(step.command, log)
        events, canceled = self._pump(proc, on_event, is_canceled)
        log.flush()
        if canceled:
            raise WorkerCanceled("canceled: no outputs were kept")
        done = next((e for e in reversed(events) if e.get("event") == "done"), None)
        if proc.returncode != 0 or done is None:
            error = next((e for e in reversed(events) if e.get("event") == "error"), None)
            raise failure_message(proc.returncode, self._log_tail(), error, self.python, self.log_path)
        return done

    def _start(self, command: list[str], log: Any) -> subprocess.Popen:
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # a console-less process group that CTRL_BREAK can reach
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        try:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                    env=self.env, cwd=WORKER_CWD, text=True, encoding="utf-8",
                                    errors="replace", **kwargs)
        except OSError as exc:
            raise WorkerError(f"could not start geoseg's interpreter {command[0]!r}: {exc}; fix it in "
                              f"{WHERE} (or {ENV_VAR})", self.log_path) from exc

    def _pump(self, proc: subprocess.Popen, on_event: Callable[[dict[str, Any]], None],
              is_canceled: Callable[[], bool]) -> tuple[list[dict[str, Any]], bool]:
        """Read events on a thread, hand them over here; interrupt the worker when canceled.

        Returns once the worker has exited, with its output pipe closed: a pipe left to the garbage
        collector is a ``ResourceWarning: unclosed file`` in QGIS's log after every run.
        """
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
        reader.start()
        events: list[dict[str, Any]] = []
        ended = False
        try:
            while not is_canceled():
                try:
                    line = lines.get(timeout=self.POLL_S)
                except queue.Empty:
                    continue
                if line is None:
                    ended = True
                    break
                event = parse_event(line)
                if event is not None:
                    events.append(event)
                    on_event(event)
        finally:
            if ended:
                proc.wait()
            else:  # canceled, or the caller's callback failed: the worker must not outlive the run
                self._stop(proc)
            reader.join(self.GRACE_S)  # EOF follows the worker's exit (its own workers die with it)
            if not reader.is_alive():  # closing under a blocked reader would wait for it
                assert proc.stdout is not None
                proc.stdout.close()
        return events, not ended

    def _stop(self, proc: subprocess.Popen) -> None:
        """Interrupt first (geoseg then deletes its temporary files), kill after a grace period."""
        if proc.poll() is None:
            proc.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGINT)
            try:
                proc.wait(self.GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _log_tail(self, size: int = 4000) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-size:]


def _read_lines(proc: subprocess.Popen, lines: "queue.Queue[str | None]") -> None:
    """The reader thread: every stdout line of the worker, then ``None`` at its end."""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.put(line)
    except (OSError, ValueError):  # the pipe was closed under us: the run is over anyway
        pass
    lines.put(None)


def run_info(python: str, path: str | None = None, model: str | None = None) -> dict[str, Any]:
    """``geoseg info [PATH] --json [--model M]`` to its end: for code off the GUI thread (Processing).

    The dialog asks through ``info_query.InfoQuery`` instead, which does not block.
    """
    command = info_command(python, path, model)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              stdin=subprocess.DEVNULL, env=clean_env(), cwd=WORKER_CWD, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkerError(f"`{' '.join(command)}` failed ({exc}): check geoseg's interpreter in {WHERE} "
                          f"(or {ENV_VAR})") from exc
    return parse_info(proc.returncode, proc.stdout, proc.stderr, python)


def parse_info(returncode: int, stdout: str, stderr: str, python: str) -> dict[str, Any]:
    """The JSON document ``geoseg info --json`` printed, or the failure as a ``WorkerError``."""
    events = [e for e in map(parse_event, stdout.splitlines()) if e is not None]
    error = next((e for e in events if e.get("event") == "error"), None)
    if returncode == 0:
        try:
            return json.loads(stdout)
        except json.JSONDecodeError:
            pass
    raise failure_message(returncode, stderr[-4000:], error, python, None)
