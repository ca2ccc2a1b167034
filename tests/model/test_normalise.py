"""Scene normalisation: each scene standardised by its own sampled statistics, so one model reads DN,
reflectance and 8-bit versions of a scene alike; fixed bundles and old bundles are unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from safetensors.torch import save_file

from geoseg.errors import ModelMismatchError
from geoseg.inference.predictor import Predictor
from geoseg.io.rasters import read_tile
from geoseg.model.fit import check_fit
from geoseg.model.loading import read_meta
from geoseg.model.meta import METADATA_KEY
from geoseg.model.normalise import Normaliser, scene_statistics

from tests.conftest import ZION, tiny_bundle, tiny_meta

BANDS = ["blue", "green", "red", "nir"]


def _scene_meta():  # noqa: ANN202
    return tiny_meta(BANDS, 4, gsd=30.0, input_dtype="uint16").model_copy(update={"normalisation": "scene"})


def _rescaled(dst: Path, kind: str) -> Path:
    """The Zion sample as reflectance (DN·2.75e-5 - 0.2, float32) or 8-bit (per-band 2-98 % stretch to 1-255,
    0 for nodata), the way such products are made."""
    with rasterio.open(ZION) as src:
        data = src.read().astype(np.float64)
        valid = src.dataset_mask() > 0
        profile = {**src.profile, "compress": "deflate"}
    if kind == "reflectance":
        out = (data * 2.75e-5 - 0.2).astype(np.float32)
        out[:, ~valid] = np.nan
        profile.update(dtype="float32", nodata=float("nan"))
    else:
        out = np.zeros(data.shape, np.uint8)
        for band, values in enumerate(data):
            low, high = np.percentile(values[valid], [2, 98])
            out[band] = np.clip(np.rint(1 + 254 * (values - low) / (high - low)), 1, 255)
        out[:, ~valid] = 0
        profile.update(dtype="uint8", nodata=0, photometric="MINISBLACK")     # four bands, not RGBA
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(out)
        ds.descriptions = tuple(BANDS)
    return dst


def _normalised(path: Path, meta) -> np.ndarray:  # noqa: ANN001
    with rasterio.open(path) as ds:
        def read(w):  # noqa: ANN001, ANN202
            return read_tile(ds, [1, 2, 3, 4], w.row_off, w.col_off, w.height, w.width, meta.input_nodata)
        data, valid = read_tile(ds, [1, 2, 3, 4], 0, 0, ds.height, ds.width, meta.input_nodata)
        return Normaliser.for_scene(meta, read, ds.height, ds.width)(data, valid)


def test_scene_statistics_cancel_any_gain_and_offset(tmp_path: Path) -> None:
    meta = _scene_meta()
    dn = _normalised(ZION, meta)
    reflectance = _normalised(_rescaled(tmp_path / "refl.tif", "reflectance"), meta)
    np.testing.assert_allclose(reflectance, dn, atol=2e-3)
    assert abs(float(np.median(dn[0]))) < 0.2 and 0.5 < float(np.std(dn[0])) < 2


def test_eight_bit_stretch_reaches_the_network_as_nearly_the_same_numbers(tmp_path: Path) -> None:
    meta = _scene_meta()
    dn = _normalised(ZION, meta)
    eight_bit = _normalised(_rescaled(tmp_path / "u8.tif", "8bit"), meta)
    assert float(np.median(np.abs(eight_bit - dn))) < 0.05           # quantisation and clipped tails only


def test_fixed_bundles_use_their_recorded_numbers() -> None:
    meta = tiny_meta(["a", "b"], 2, mean=10.0, std=2.0)
    data = np.array([[[10.0, 14.0]], [[6.0, 10.0]]], np.float32)
    out = Normaliser.for_scene(meta, lambda w: (_ for _ in ()).throw(AssertionError("no sampling")), 1, 2)(
        data, np.array([[True, False]]))
    np.testing.assert_array_equal(out, [[[0.0, 0.0]], [[-2.0, 0.0]]])


def test_statistics_skip_nodata_and_an_empty_scene_is_neutral() -> None:
    data = np.full((1, 40, 40), 7.0, np.float32)
    data[0, :20] = np.arange(20 * 40).reshape(20, 40)
    valid = np.zeros((40, 40), bool)
    valid[:20] = True

    def read(w):  # noqa: ANN001, ANN202
        rows, cols = w.toslices()
        return data[:, rows, cols], valid[rows, cols]

    stats = scene_statistics(read, 40, 40)
    assert stats is not None and stats[0].low >= 0 and stats[0].centre == pytest.approx(399.5, abs=1)
    meta = tiny_meta(["a"], 2).model_copy(update={"normalisation": "scene"})
    empty = Normaliser.for_scene(meta, lambda w: (data[:, :w.height, :w.width], np.zeros((w.height, w.width), bool)),
                                 40, 40)
    assert empty.mean.ravel().tolist() == [0.0] and empty.std.ravel().tolist() == [1.0]


def test_one_scene_normalised_model_maps_dn_reflectance_and_8bit_alike(tmp_path: Path) -> None:
    bundle = tmp_path / "scene.safetensors"
    tiny_bundle(_scene_meta()).save(bundle)
    predictor = Predictor(bundle, device="cpu")
    maps = []
    for name, scene in (("dn", ZION), ("refl", _rescaled(tmp_path / "refl.tif", "reflectance")),
                        ("u8", _rescaled(tmp_path / "u8.tif", "8bit"))):
        predictor.predict(scene, tmp_path / f"map_{name}.tif", qml=False, stac=False)   # the fit check passes
        with rasterio.open(tmp_path / f"map_{name}.tif") as ds:
            maps.append(ds.read(1))
    assert np.mean(maps[1] == maps[0]) > 0.999
    assert np.mean(maps[2] == maps[0]) > 0.9


def test_fit_check_takes_any_scale_but_refuses_constant_bands(tmp_path: Path) -> None:
    meta = _scene_meta()
    refl = _rescaled(tmp_path / "refl.tif", "reflectance")
    with rasterio.open(refl) as ds:
        report = check_fit(ds, meta)
        assert report.ok and not report.warnings                   # no "values must be on the same scale"
        fixed = meta.model_copy(update={"normalisation": "fixed", "bands": [
            b.model_copy(update={"clip_low": 7000.0, "clip_high": 20000.0}) for b in meta.bands]})
        assert not check_fit(ds, fixed).ok                          # a fixed model still refuses it
    flat = tmp_path / "flat.tif"
    with rasterio.open(ZION) as src:
        profile, data = src.profile, src.read()
    data[2] = 9000
    with rasterio.open(flat, "w", **profile) as ds:
        ds.write(data)
    with rasterio.open(flat) as ds:
        report = check_fit(ds, meta)
    assert not report.ok
    with pytest.raises(ModelMismatchError, match=r"constant over most of the scene: red \(band 3: 9000\)"):
        raise report.refusal(str(flat))


def test_version_1_bundles_load_as_fixed_normalisation(tmp_path: Path) -> None:
    raw = json.loads(tiny_meta(["a"], 2).model_dump_json())
    raw["format_version"] = 1
    del raw["normalisation"]
    path = tmp_path / "v1.safetensors"
    save_file(tiny_bundle(tiny_meta(["a"], 2)).state_dict, str(path), metadata={METADATA_KEY: json.dumps(raw)})
    meta = read_meta(path)
    assert meta.normalisation == "fixed" and meta.format_version == 2
