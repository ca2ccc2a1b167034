"""Damaged inputs are one line naming the problem (exit 2), with no traceback and nothing left behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import ZION


@pytest.fixture
def damaged_tiles(tmp_path: Path) -> Path:
    """A valid header whose compressed tile data is overwritten with noise halfway through the file."""
    path = tmp_path / "damaged.tif"
    with rasterio.open(ZION) as src:
        profile = src.profile.copy()
        data = src.read()
    profile.update(tiled=True, blockxsize=128, blockysize=128, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 20_000] = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return path


def geoseg(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoseg", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_predict_on_damaged_tile_data(damaged_tiles: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = damaged_tiles.read_bytes()
    result = geoseg("predict", damaged_tiles, "-o", out / "m.tif", "--progress", "none", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"geoseg: error: {damaged_tiles}: cannot decode rows" in result.stderr and "damaged" in result.stderr
    assert list(out.iterdir()) == [] and damaged_tiles.read_bytes() == before


def test_vectorize_on_a_damaged_class_map(damaged_tiles: Path, tmp_path: Path) -> None:
    classes = tmp_path / "classes.tif"
    with rasterio.open(damaged_tiles) as src:
        profile = src.profile.copy()
    profile.update(count=1, dtype="uint8", nodata=255)
    with rasterio.open(classes, "w", **profile) as dst:
        dst.write(np.random.default_rng(1).integers(1, 5, (1, profile["height"], profile["width"]), dtype=np.uint8))
    raw = bytearray(classes.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 5_000] = bytes(5_000)
    classes.write_bytes(bytes(raw))
    result = geoseg("vectorize", classes, "-o", tmp_path / "p.gpkg", "--workers", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "damaged" in result.stderr
    assert not (tmp_path / "p.gpkg").exists()


def test_a_truncated_file_is_not_a_raster(tmp_path: Path) -> None:
    cut = tmp_path / "cut.tif"
    cut.write_bytes(ZION.read_bytes()[:300])
    result = geoseg("predict", cut, "-o", tmp_path / "m.tif", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("geoseg: error:")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif"]
