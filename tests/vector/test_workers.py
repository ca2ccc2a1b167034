"""Block reads, in this process and in worker processes, run inside geoseg's GDAL environment (io.gdal_env)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from rasterio.env import get_gdal_config

import geoseg.vector.workers
from geoseg.vector.vectorize import vectorize
from geoseg.vector.workers import block_cache_mb

CROP = Path(__file__).parents[1] / "data" / "zion_nlcd8_crop.tif"
FORK = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the spy reaches workers by fork")
pytestmark = pytest.mark.timeout(120)   # a worker stuck on its parent's GDAL threads would hang, not fail


def gdal_settings_at_block_reads(monkeypatch: pytest.MonkeyPatch, folder: Path, **options: object) -> set[tuple]:
    """(GDAL_CACHEMAX, GDAL_NUM_THREADS, in a worker) as GDAL sees them when each block is read."""
    real = geoseg.vector.workers.block_reader

    def spying(*args: object):  # noqa: ANN202
        read = real(*args)

        def spy(window):  # noqa: ANN001, ANN202
            seen = (get_gdal_config("GDAL_CACHEMAX"), get_gdal_config("GDAL_NUM_THREADS"), os.getpid() != parent)
            (folder / f"{os.getpid()}_{window.row_off}_{window.col_off}").write_text(repr(seen))
            return read(window)

        return spy

    parent = os.getpid()
    folder.mkdir()
    monkeypatch.setattr(geoseg.vector.workers, "block_reader", spying)
    vectorize(CROP, folder.parent / "p.gpkg", block_size=100, **options)
    reads = [eval(p.read_text()) for p in folder.iterdir()]  # noqa: S307 (our own reprs)
    assert len(reads) == 16
    return set(reads)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=FORK)])
def test_block_reads_use_the_per_process_block_cache(tmp_path, monkeypatch, workers):
    monkeypatch.delenv("GEOSEG_GDAL_CACHEMAX", raising=False)
    with rasterio.open(CROP) as ds:
        expected = block_cache_mb(ds, 100, 0) * 2**20
    threads = 1 if workers > 1 else "ALL_CPUS"
    seen = gdal_settings_at_block_reads(monkeypatch, tmp_path / "seen", workers=workers)
    assert seen == {(expected, threads, workers > 1)}


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=FORK)])
def test_geoseg_gdal_cachemax_reaches_the_block_reads(tmp_path, monkeypatch, workers):
    monkeypatch.setenv("GEOSEG_GDAL_CACHEMAX", "77")
    seen = gdal_settings_at_block_reads(monkeypatch, tmp_path / "seen", workers=workers, min_area=1800)
    assert {cache for cache, _, _ in seen} == {77 * 2**20}
    assert {in_worker for _, _, in_worker in seen} == {workers > 1}


@FORK
def test_workers_forked_after_gdal_threads_were_used_do_not_hang(tmp_path):
    """A forked worker must not decode with the GDAL thread pool of its parent (its threads are gone)."""
    code = ("import rasterio\nfrom geoseg.io.rasters import gdal_env\nfrom geoseg.vector.vectorize import vectorize\n"
            f"with gdal_env(), rasterio.open({str(CROP)!r}) as ds:\n    ds.read(1)\n"
            f"print(vectorize({str(CROP)!r}, {str(tmp_path / 'p.gpkg')!r}, block_size=100, workers=2).n_polygons)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and int(result.stdout) > 0, result.stderr
