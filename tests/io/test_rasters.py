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


def test_undeclared_fill_values_are_pointed_out(tmp_path: Path) -> None:
    import numpy as np
    import rasterio

    from geoseg.io.rasters import fill_hints

    with rasterio.open(ZION) as src:
        data, profile = src.read(), src.profile.copy()
        assert fill_hints(src) == []
    data[:, :, :300] = 0                                 # a black frame, undeclared
    profile.update(nodata=None)
    with rasterio.open(tmp_path / "framed.tif", "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(tmp_path / "framed.tif") as framed:
        hints = fill_hints(framed)
    assert len(hints) == 1 and "are 0 in every band and the file declares no nodata" in hints[0]
    assert "--nodata 0" in hints[0]
    float_profile = {**profile, "dtype": "float32", "nodata": -9999.0}
    nan_data = data.astype("float32")
    nan_data[:, :10] = np.nan
    with rasterio.open(tmp_path / "nan.tif", "w", **float_profile) as dst:
        dst.write(nan_data)
    with rasterio.open(tmp_path / "nan.tif") as nan_scene:
        assert any("NaN pixels are present although the file declares nodata -9999" in h
                   for h in fill_hints(nan_scene))
