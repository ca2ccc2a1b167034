"""Fill values never become data: one declared at predict time (a black frame), or one band's own nodata."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from geoseg import predict
from geoseg.io.rasters import read_tile
from geoseg.training.config import TrainConfig
from geoseg.training.data import IGNORE_INDEX, load_scene
from tests.conftest import ZION, ZION_LABELS, read_band, tiny_config


def _framed(tmp_path: Path, fill: float) -> Path:
    """The Zion sample as float32 without a declared nodata, with a 40-column frame of ``fill``."""
    with rasterio.open(ZION) as src:
        data, profile = src.read().astype("float32"), src.profile.copy()
    data[:, :, :40] = fill
    profile.update(dtype="float32", nodata=None)
    path = tmp_path / "framed.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_a_declared_fill_value_gets_the_nodata_class(tmp_path: Path, zion_bundle_path: Path) -> None:
    for fill in (0.0, float("nan")):
        scene = _framed(tmp_path, fill)
        predict(scene, tmp_path / "plain.tif", model=zion_bundle_path, tile=64, overlap=16, overwrite=True)
        predict(scene, tmp_path / "declared.tif", model=zion_bundle_path, tile=64, overlap=16, overwrite=True,
                nodata=fill)
        plain, declared = read_band(tmp_path / "plain.tif"), read_band(tmp_path / "declared.tif")
        assert (declared[:, :40] == 255).all()
        assert np.array_equal(declared[:, 60:], plain[:, 60:])      # away from the frame: the same map
        if fill == 0.0:
            assert (plain[:, :40] != 255).all()                       # undeclared, the frame was classified


def _band_gap(tmp_path: Path, cols: slice) -> Path:
    """The Zion sample as float32 declaring nodata -99999, with band 3 (red) missing in ``cols`` only:
    the other bands hold real values there, as in a stack of bands with different footprints."""
    with rasterio.open(ZION) as src:
        data, profile = src.read().astype("float32"), src.profile.copy()
    data[2, :, cols] = -99999
    profile.update(dtype="float32", nodata=-99999)
    path = tmp_path / "band_gap.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_a_pixel_missing_in_one_band_is_nodata(tmp_path: Path) -> None:
    """GDAL's dataset mask calls such a pixel valid (one band is); read_tile does not."""
    scene = _band_gap(tmp_path, slice(100, 140))
    with rasterio.open(scene) as dataset:
        assert (dataset.dataset_mask()[:, 100:140] == 255).all()
        data, valid = read_tile(dataset, [1, 2, 3, 4], 0, 0, dataset.height, dataset.width)
        assert not valid[:, 100:140].any() and valid[:, :100].all() and valid[:, 140:].all()
        _, without_red = read_tile(dataset, [1, 2, 4], 0, 0, dataset.height, dataset.width)
        assert without_red.all()                        # only the bands read count


def test_prediction_and_training_never_use_one_band_fill(tmp_path: Path, zion_bundle_path: Path) -> None:
    scene = _band_gap(tmp_path, slice(100, 140))
    predict(scene, tmp_path / "map.tif", model=zion_bundle_path, tile=64, overlap=16)
    assert (read_band(tmp_path / "map.tif")[:, 100:140] == 255).all()

    config = TrainConfig.model_validate(tiny_config(tmp_path, scene, ZION_LABELS, input_dtype="float32",
                                                    input_nodata=None))
    data = load_scene(config.scenes[0], config)
    assert data.image[:, data.valid].min() > 0                       # no -99999 reaches the statistics
    assert (data.labels[:, 100:140] == IGNORE_INDEX).all()           # nor a training sample
