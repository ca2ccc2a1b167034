"""Fitting a model to a scene: bands asked for on purpose, fills the user declares, alpha bands by name."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from geoseg import predict
from geoseg.errors import ModelMismatchError
from geoseg.io.rasters import open_raster
from geoseg.model.fit import check_fit
from geoseg.model.loading import DEFAULT_MODEL_PATH, read_meta
from tests.conftest import ZION, read_band


def _zion_variant(tmp_path: Path, name: str, edit, **profile_updates: object) -> Path:
    with rasterio.open(ZION) as src:
        data, profile, names = src.read(), src.profile.copy(), src.descriptions
    data = edit(data)
    profile.update(count=data.shape[0], **profile_updates)
    path = tmp_path / name
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = names[: data.shape[0]]
    return path


def test_one_band_feeds_several_model_bands_only_when_asked(tmp_path: Path, zion_bundle_path: Path) -> None:
    pan = _zion_variant(tmp_path, "pan.tif", lambda d: d[3:4])
    with pytest.raises(ModelMismatchError, match=r"repeats band 1.*repeat_bands=True"):
        predict(pan, tmp_path / "map.tif", model=zion_bundle_path, bands=[1, 1, 1, 1])
    assert not (tmp_path / "map.tif").exists()
    predict(pan, tmp_path / "map.tif", model=zion_bundle_path, bands=[1, 1, 1, 1], repeat_bands=True)
    assert read_band(tmp_path / "map.tif").shape == (404, 1128)


def test_a_declared_fill_is_left_out_of_the_value_check(tmp_path: Path) -> None:
    """A black frame over most of the scene would read as 'values below the model's range'."""
    def frame(data: np.ndarray) -> np.ndarray:
        data[:, :, :800] = 0
        return data

    scene = _zion_variant(tmp_path, "framed.tif", frame, nodata=None)
    meta = read_meta(DEFAULT_MODEL_PATH)
    with open_raster(scene) as dataset:
        refused = check_fit(dataset, meta)
        assert not refused.ok and "not on the model's scale" in refused.problems[0]
        assert check_fit(dataset, meta, fill=0).ok


def test_an_alpha_band_named_as_the_model_band_is_data(tmp_path: Path, zion_bundle_path: Path) -> None:
    """NAIP files often flag their NIR band as alpha while naming it nir: the name wins; unnamed, it is alpha."""
    def tagged(path: Path, describe: bool) -> Path:
        with rasterio.open(path, "r+") as dataset:
            dataset.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.alpha]
            if not describe:
                dataset.descriptions = (None,) * 4
        return path

    meta = read_meta(zion_bundle_path)
    named = tagged(_zion_variant(tmp_path, "named.tif", lambda d: d), describe=True)
    unnamed = tagged(_zion_variant(tmp_path, "unnamed.tif", lambda d: d), describe=False)
    with open_raster(named) as dataset:
        assert check_fit(dataset, meta).ok
    with open_raster(unnamed) as dataset:
        assert "alpha (transparency) band, not nir" in check_fit(dataset, meta).problems[0]


def test_info_reports_band_values_with_and_without_a_declared_fill(tmp_path: Path) -> None:
    def frame(data: np.ndarray) -> np.ndarray:
        data[:, :, :300] = 0
        return data

    scene = _zion_variant(tmp_path, "framed.tif", frame, nodata=None)

    def info(*extra: str) -> dict:
        result = subprocess.run([sys.executable, "-m", "geoseg", "info", str(scene), "--json", *extra],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    plain, declared = info(), info("--nodata", "0")
    assert any("pass --nodata 0" in hint for hint in plain["hints"]) and declared["hints"] == []
    assert [b["valid_share"] for b in plain["band_values"]] == [1.0] * 4
    assert all(0.6 < b["valid_share"] < 0.9 and b["p2"] > 0 for b in declared["band_values"])
    assert plain["band_values"][0]["p2"] == 0


def test_classic_methods_honour_a_declared_fill(tmp_path: Path) -> None:
    def frame(data: np.ndarray) -> np.ndarray:
        data[:, :, :100] = 0
        return data

    scene = _zion_variant(tmp_path, "framed.tif", frame, nodata=None)
    result = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(scene), "-o", str(tmp_path / "ndvi.tif"),
                             "--method", "ndvi-otsu", "--bands", "2,3,4", "--nodata", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    classes = read_band(tmp_path / "ndvi.tif")
    assert (classes[:, :100] == 255).all() and (classes[:, 100:] != 255).all()
