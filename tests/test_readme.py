"""Every command in the README runs, as written, from a fresh clone, so the README cannot rot.

The clone is what git would check out (tracked files, plus untracked ones git does not ignore, so work in
progress is tested too), copied into a temporary folder. Its ``.venv`` points at the environment running
the tests, as ``make demo`` would have made it, and PYTHONPATH at the copy, so ``geoseg`` there is the
copy's own code. Every ```bash block runs in order with ``bash -e`` (any failing line fails its block),
every ```python block with that interpreter; ```text blocks are syntax summaries: their commands and
flags are checked against ``geoseg COMMAND --help`` instead. One line is not run: ``make test``, which is
this suite.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Lines of the README's bash blocks that are not run here, and why.
NOT_RUN = {"make test": "it is this test suite"}
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
#: Folders a checkout without git metadata leaves out of the copy (build outputs, environments, results).
NOT_COPIED = (".git", ".venv", ".venv-qgis", ".venvshim", "runs", "out", "demo_out", "__pycache__",
              ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist")


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text(encoding="utf-8")) if lang == language]


def runnable(script: str) -> str:
    """The block without the lines this suite does not run."""
    kept = [line for line in script.splitlines() if line.split("#")[0].strip() not in NOT_RUN]
    return "\n".join(kept) + "\n"


def _tracked_files() -> list[str] | None:
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [name for name in listing.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this checkout, with ``.venv`` set up."""
    target = tmp_path_factory.mktemp("clone") / "geoseg"
    files = _tracked_files()
    if files is None:                                     # not a git checkout (an unpacked archive)
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*NOT_COPIED))
    else:
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return target


def environment(clone: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(clone)
    env["COLUMNS"] = "200"
    env.pop("PYTHONSTARTUP", None)
    return env


def _run(command: list[str], clone: Path, timeout: float) -> None:
    proc = subprocess.run(command, cwd=clone, env=environment(clone), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n" \
                                 f"--- stderr\n{proc.stderr[-6000:]}"


def test_readme_has_runnable_blocks() -> None:
    assert len(blocks("bash")) >= 2 and blocks("python") and blocks("text")
    assert "make demo" in blocks("bash")[0] and "geoseg train configs/sample_quickstart.yaml" in blocks("bash")[1]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("bash"))))
def test_bash_block_runs(index: int, clone: Path) -> None:
    _run(["bash", "-euo", "pipefail", "-c", runnable(blocks("bash")[index])], clone, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index: int, clone: Path) -> None:
    _run([str(clone / ".venv" / "bin" / "python"), "-c", blocks("python")[index]], clone, timeout=600)


def help_texts() -> dict[str, str]:
    """``geoseg COMMAND --help`` of every command the summaries name."""
    commands = {line.split()[1] for body in blocks("text") for line in body.splitlines()
                if line.startswith("geoseg ")}
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    return {c: subprocess.run([sys.executable, "-m", "geoseg", c, "--help"], capture_output=True, text=True,
                              env=env, cwd=ROOT).stdout for c in sorted(commands)}


def test_option_summaries_name_real_commands_and_flags() -> None:
    helps = help_texts()
    missing: list[str] = []
    for body in blocks("text"):
        command = None
        for line in body.splitlines():
            if line.startswith("geoseg "):
                command = line.split()[1]
            missing += [f"geoseg {command} {flag}" for flag in re.findall(r"(?<![\w-])--?[a-z][\w-]*", line)
                        if command and flag not in helps[command]]
    assert all(helps.values()), [c for c, text in helps.items() if not text]
    assert not missing, f"flags in README.md that geoseg does not have: {missing}"
