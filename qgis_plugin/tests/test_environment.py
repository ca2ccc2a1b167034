"""Making geoseg's environment, without QGIS: folders, commands, failures, cancel, advice."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from geoseg_qgis import environment  # noqa: E402
from geoseg_qgis.worker import (WorkerCanceled, WorkerError, install_advice, is_environment,  # noqa: E402
                                venv_python)


def test_base_python_is_a_python() -> None:
    base = environment.base_python()
    assert base is not None and Path(base).name.lower().startswith("python")


def test_an_existing_folder_with_files_is_never_used(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep")
    with pytest.raises(WorkerError, match="already exists and is not empty"):
        environment.check_folder(tmp_path)
    assert environment.check_folder(tmp_path / "new") == tmp_path / "new"


def test_commands_make_a_venv_then_pip_install_geoseg(tmp_path: Path) -> None:
    venv, pip = environment.install_commands("/usr/bin/python3", tmp_path / "env")
    assert venv == ["/usr/bin/python3", "-m", "venv", str(tmp_path / "env")]
    assert pip == [venv_python(tmp_path / "env"), "-m", "pip", "install", "geoseg"]


def test_create_makes_a_real_environment(tmp_path: Path) -> None:
    """``python -m venv`` for real (no pip, so no network); the second step runs in the new interpreter."""
    folder = tmp_path / "env"
    python = venv_python(folder)
    commands = [[sys.executable, "-m", "venv", "--without-pip", str(folder)],
                [python, "-c", "import sys; assert sys.prefix != sys.base_prefix"]]
    progress: list[float] = []
    assert environment.create(commands, folder, tmp_path / "env.log", on_progress=progress.append) == python
    assert is_environment(python) and progress == [0.0, 50.0, 100.0]
    assert "$ " + " ".join(commands[1]) in (tmp_path / "env.log").read_text()


def _fake(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_failure_removes_the_new_folder_and_says_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "env"
    make = _fake(f"import os; os.makedirs({str(folder)!r}); open(os.path.join({str(folder)!r}, 'x'), 'w')")
    broken = _fake("print('The virtual environment was not created successfully because ensurepip is not "
                   "available.  apt install python3.11-venv'); raise SystemExit(1)")
    with pytest.raises(WorkerError, match=r"sudo apt install python3-venv.*\(worker log: ") as error:
        environment.create([make, broken], folder, tmp_path / "env.log")
    assert error.value.log_path == tmp_path / "env.log"
    assert not folder.exists()


def test_cancel_stops_pip_and_removes_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "env"
    make = _fake(f"import os; os.makedirs({str(folder)!r})")
    slow = _fake("import time; time.sleep(60)")
    calls: list[int] = []
    with pytest.raises(WorkerCanceled):
        environment.create([make, slow], folder, tmp_path / "env.log",
                           is_canceled=lambda: bool(calls.append(1)) or len(calls) > 3)
    assert not folder.exists()


def test_a_folder_that_was_there_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(WorkerError):
        environment.create([_fake("raise SystemExit(3)")], folder, tmp_path / "env.log")
    assert folder.is_dir()


def test_advice_for_a_system_python_is_a_venv_not_pip(tmp_path: Path) -> None:
    """pip into Debian's /usr/bin/python3 stops at 'externally-managed-environment' (PEP 668)."""
    system = tmp_path / "usr" / "bin" / "python3"
    system.parent.mkdir(parents=True)
    system.write_text("")
    advice = install_advice(str(system))
    assert "-m venv" in advice and "New environment…" in advice and f"{system} -m pip" not in advice
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    venv = str(tmp_path / "venv" / "bin" / "python")
    assert f"`{venv} -m pip install geoseg`" in install_advice(venv)
