"""A fill value the file does not declare (a black frame) can be declared at predict time: never classified."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from geoseg import predict
from tests.conftest import ZION, read_band


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
