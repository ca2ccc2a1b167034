"""glibc allocator tuning: applied once on Linux/glibc CPU runs, respects opt-outs, changes no output."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from tests.conftest import ZION, read_band, write_crop

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                           reason="mallopt tuning is for Linux with glibc")


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GEOSEG_MALLOC"))}
    result = subprocess.run([sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@glibc
def test_applied_on_cpu_plans_unless_the_user_opts_out() -> None:
    probe = ("from geoseg.inference.device import plan_execution; "
             "from geoseg.inference.allocator import keep_large_blocks; plan_execution('cpu'); print(keep_large_blocks.cache_info().currsize, keep_large_blocks())")
    assert _run(probe) == "1 True"                       # the CPU plan applied it, once
    assert _run(probe, GEOSEG_MALLOC_TUNING="0") == "1 False"
    assert _run(probe, MALLOC_TRIM_THRESHOLD_="1000000") == "1 False"


@glibc
def test_predictions_are_identical_with_and_without_tuning(tmp_path: Path) -> None:
    scene = write_crop(ZION, tmp_path / "scene.tif", Window(0, 0, 384, 256))
    code = "import sys, geoseg; geoseg.predict(sys.argv[1], sys.argv[2])"
    maps = []
    for flag in ("1", "0"):
        out = tmp_path / f"map_{flag}.tif"
        _run(code.replace("sys.argv[1]", repr(str(scene))).replace("sys.argv[2]", repr(str(out))),
             GEOSEG_MALLOC_TUNING=flag)
        maps.append(read_band(out))
    np.testing.assert_array_equal(maps[0], maps[1])
