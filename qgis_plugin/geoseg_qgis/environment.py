# SPDX-License-Identifier: GPL-2.0-or-later
"""Make a new Python environment for geoseg: ``python -m venv FOLDER``, then ``pip install geoseg`` there.

Pure Python (no QGIS import). Why the plugin offers it: the interpreter users find first is usually the
system's, and Debian's (like other distributions') refuses ``pip install`` outright (PEP 668). A virtual
environment in a folder of the user's choosing is the documented remedy. It is safe to automate because it
writes only into that new folder (refused if it already holds anything), needs no administrator rights,
installs from the user's own pip configuration, and a canceled or failed run removes the folder again.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .worker import ENV_VAR, PACKAGE, WORKER_CWD, WorkerCanceled, WorkerError, clean_env, venv_python

#: What the dialog proposes.
DEFAULT_FOLDER = Path.home() / "geoseg-env"
GRACE_S = 5.0


def base_python() -> str | None:
    """A Python 3 to create the environment with: ``python3`` on PATH, else the Python QGIS runs.

    Inside QGIS ``sys.executable`` may be QGIS itself; on Windows (OSGeo4W) QGIS's ``python.exe`` lies in
    ``sys.exec_prefix``, and ``python`` on PATH may be the Microsoft Store stub.
    """
    candidates = [Path(sys.exec_prefix) / "python.exe"] if sys.platform == "win32" else []
    candidates += [Path(p) for p in (shutil.which("python3"), shutil.which("python")) if p]
    candidates += [Path(sys.executable), Path(sys.exec_prefix) / "bin" / "python3"]
    for candidate in candidates:
        if candidate.name.lower().startswith("python") and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def check_folder(folder: str | Path) -> Path:
    """The folder as an absolute path; a ``WorkerError`` if it exists and is not empty (never overwrite)."""
    path = Path(folder).expanduser().absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise WorkerError(f"{path} already exists and is not empty: choose a new folder for the environment")
    return path


def install_commands(base: str, folder: Path, package: str = PACKAGE) -> list[list[str]]:
    """The two commands, also shown to the user before anything runs."""
    return [[base, "-m", "venv", str(folder)],
            [venv_python(folder), "-m", "pip", "install", package]]


def create(commands: list[list[str]], folder: Path, log_path: Path,
           is_canceled: Callable[[], bool] = lambda: False,
           on_progress: Callable[[float], None] = lambda p: None) -> str:
    """Run ``commands`` (output to ``log_path``) and return the new interpreter; clean up otherwise.

    Raises ``WorkerCanceled`` or ``WorkerError``; either way a folder this run created is removed.
    """
    created = not folder.exists()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "w", encoding="utf-8", errors="replace") as log:
            for i, command in enumerate(commands):
                on_progress(100.0 * i / len(commands))
                _run(command, log, is_canceled)
    except (WorkerCanceled, WorkerError) as exc:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, WorkerError) and exc.log_path is None:
            raise WorkerError(f"{exc} ({_hint(log_path)})", log_path) from None
        raise
    on_progress(100.0)
    return venv_python(folder)


def _run(command: list[str], log: IO[str], is_canceled: Callable[[], bool]) -> None:
    """One command, its output into the log; interrupted (terminate, then kill) when canceled."""
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    env = {k: v for k, v in clean_env().items() if k != ENV_VAR}
    env.pop("VIRTUAL_ENV", None)  # pip must install into the new environment, not an active one
    try:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=WORKER_CWD)
    except OSError as exc:
        raise WorkerError(f"could not run {command[0]!r}: {exc}") from exc
    with proc:
        while proc.poll() is None:
            if is_canceled():
                proc.terminate()
                try:
                    proc.wait(GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise WorkerCanceled("canceled: the new environment was removed")
            time.sleep(0.2)
    if proc.returncode != 0:
        raise WorkerError(f"`{' '.join(command)}` failed (exit code {proc.returncode})")


def _hint(log_path: Path) -> str:
    """What to do about the commonest failures, read from the log."""
    text = log_path.read_text(encoding="utf-8", errors="replace").lower()
    if "ensurepip is not available" in text or "python3-venv" in text:
        return ("this Python cannot make environments yet: install its venv package "
                "(Debian/Ubuntu: sudo apt install python3-venv) and try again")
    if "could not find a version" in text or "no matching distribution" in text:
        return f"pip found no {PACKAGE} for this Python: check its version and your package index"
    if "connection" in text or "network" in text or "resolve" in text:
        return "pip could not download the packages: check the network or your pip proxy settings"
    return "the log says why"
