"""The xarray face gives the same classes, on the same coordinates, as the file pipeline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoseg.errors import InputError, ParameterError
from geoseg.inference.predictor import Predictor

from .conftest import ZION, read_band

rioxarray = pytest.importorskip("rioxarray", reason="the xarray face needs: pip install 'geoseg[xarray]'")


def test_dataarray_matches_file_pipeline(tmp_path: Path, zion_bundle_path: Path) -> None:
    from geoseg.xarray import predict_dataarray

    predictor = Predictor(zion_bundle_path, tile=64, overlap=16)
    predictor.predict(ZION, tmp_path / "c.tif")
    scene = rioxarray.open_rasterio(ZION, chunks={"x": 256, "y": 256})  # dask-backed, like big scenes
    result = predict_dataarray(scene, predictor)
    assert result.dims == ("y", "x") and result.dtype == np.uint8
    assert np.array_equal(result.values, read_band(tmp_path / "c.tif"))
    assert np.array_equal(result.x.values, scene.x.values) and np.array_equal(result.y.values, scene.y.values)
    assert result.rio.crs == scene.rio.crs
    assert result.attrs["classes"][1] == "water" and result.attrs["_FillValue"] == 255


def test_dataarray_without_crs_is_refused(zion_bundle_path: Path) -> None:
    from geoseg.xarray import predict_dataarray

    import xarray

    with rioxarray.open_rasterio(ZION) as scene:
        bare = xarray.DataArray(scene.values, dims=scene.dims, coords={"y": scene.y, "x": scene.x})
    assert bare.rio.crs is None
    with pytest.raises(InputError, match="no CRS"):
        predict_dataarray(bare, zion_bundle_path)


def test_options_that_differ_from_a_given_predictor_are_refused(zion_bundle_path: Path) -> None:
    from geoseg.xarray import predict_dataarray

    predictor = Predictor(zion_bundle_path, tile=64, overlap=16)
    with rioxarray.open_rasterio(ZION) as scene:
        corner = scene.isel(y=slice(0, 96), x=slice(0, 128)).load()
    with pytest.raises(ParameterError, match="^tile 128: the Predictor given was made with 64"):
        predict_dataarray(corner, predictor, tile=128)
    with pytest.raises(ParameterError, match="^overlap 0: the Predictor given was made with 16"):
        predict_dataarray(corner, predictor, overlap=0)
    same = predict_dataarray(corner, predictor, tile=64, overlap=16)       # what it was made with: fine
    assert same.shape == (96, 128)
    assert np.array_equal(same.values, predict_dataarray(corner, zion_bundle_path, tile=64, overlap=16).values)


def test_dask_input_gives_a_lazy_result_equal_to_the_eager_one(zion_bundle_path: Path) -> None:
    import dask.array as da

    from geoseg.xarray import predict_dataarray

    predictor = Predictor(zion_bundle_path, tile=64, overlap=16)
    reads: list[int] = []

    def counted(block: np.ndarray) -> np.ndarray:
        reads.append(block.shape[1])
        return block

    with rioxarray.open_rasterio(ZION) as opened:
        eager_input = opened.load()
    lazy_input = eager_input.copy(data=da.from_array(eager_input.values, chunks=(4, 100, 1128)).map_blocks(
        counted, meta=np.empty((0, 0, 0), eager_input.dtype)))
    lazy = predict_dataarray(lazy_input, predictor)
    assert isinstance(lazy.data, da.Array) and reads == []             # nothing read or computed yet
    assert lazy.data.numblocks[0] >= 3                                 # a task per band of tile rows
    eager = predict_dataarray(eager_input, predictor)                  # numpy-backed: the file pipeline
    assert np.array_equal(lazy.values, eager.values) and reads
    assert lazy.attrs == eager.attrs and lazy.rio.crs == eager.rio.crs
    assert np.array_equal(lazy.y.values, eager.y.values)
