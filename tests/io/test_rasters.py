"""Any GDAL raster opens, GDAL virtual paths included; a missing one is a one-line error naming it."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from geoseg.errors import InputFileError
from geoseg.io.rasters import is_gdal_path, open_raster
from tests.conftest import ZION


@pytest.fixture
def zipped(tmp_path: Path) -> Path:
    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ZION, "inner/scene.tif")
    return archive


def test_virtual_paths_are_not_normalised(zipped: Path) -> None:
    for path in (f"/vsizip/{zipped}/inner/scene.tif", f"zip://{zipped}!inner/scene.tif"):
        assert is_gdal_path(path)
        with open_raster(path) as dataset:
            assert (dataset.width, dataset.count) == (1128, 4)
    assert not is_gdal_path(ZION) and not is_gdal_path("relative/scene.tif")


def test_missing_rasters_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nothere.tif: file not found"):
        open_raster(tmp_path / "nothere.tif")
    with pytest.raises(InputFileError, match=r"/vsizip/.*missing.zip/x.tif: not a raster GDAL can read"):
        open_raster(f"/vsizip/{tmp_path}/missing.zip/x.tif")


def test_the_cli_predicts_from_a_zipped_scene(zipped: Path, tmp_path: Path) -> None:
    def run(source: str, out: Path) -> bytes:
        subprocess.run([sys.executable, "-m", "geoseg", "predict", source, "-o", str(out), "--progress", "none"],
                       check=True)
        return out.read_bytes()

    from_zip = run(f"/vsizip/{zipped}/inner/scene.tif", tmp_path / "a.tif")
    assert from_zip == run(str(ZION), tmp_path / "b.tif")
