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

from tests.conftest import ZION

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


def _interrupt(args: list[str], signum: int, folder: Path) -> tuple[int, str, float]:
    """Start ``geoseg ARGS --progress json``, send ``signum`` after the first progress event."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args, "--progress", "json"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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
