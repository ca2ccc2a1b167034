"""Precision: fp32 by default on every CPU (the same map everywhere); bf16 on request, tested where native."""
from __future__ import annotations

from pathlib import Path

import pytest

from geoseg import Predictor
from geoseg.inference.device import cpu_has_native_bf16, plan_execution
from tests.conftest import ZION, read_band


def test_auto_precision_on_a_cpu_is_fp32_whatever_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    for native in (True, False):
        monkeypatch.setattr("geoseg.inference.device.cpu_has_native_bf16", lambda native=native: native)
        assert plan_execution("cpu", "auto").precision == "fp32"
    assert plan_execution("cpu", "bf16").precision == "bf16"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX): the bf16 "
                    "path is emulated and many times slower; it is tested where the CPU has it")
def test_bf16_on_request_agrees_with_fp32(tmp_path: Path) -> None:
    maps = {}
    for precision in ("fp32", "bf16"):
        summary = Predictor(precision=precision).predict(ZION, tmp_path / f"{precision}.tif")
        assert summary.precision == precision
        maps[precision] = read_band(tmp_path / f"{precision}.tif")
    assert (maps["fp32"] == maps["bf16"]).mean() >= 0.99
