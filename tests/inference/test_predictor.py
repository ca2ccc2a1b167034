"""The predictor end to end on real GeoTIFFs: georeferencing, determinism, nodata, outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import calculate_default_transform, reproject
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoseg.io.legend import ClassScheme
from geoseg.errors import ModelMismatchError, OutputExistsError, ParameterError
from geoseg.inference.predictor import Predictor, predict
from geoseg.inference.tiling import TileGrid

from tests.conftest import LANDSAT7_FRAME, ZION, read_band, tiny_bundle, tiny_meta


def _assert_same_grid(src: Path, dst: Path) -> None:
    with rasterio.open(src) as a, rasterio.open(dst) as b:
        assert b.crs == a.crs
        assert b.transform.almost_equals(a.transform, precision=1e-12) and b.transform == a.transform
        assert (b.width, b.height) == (a.width, a.height)
        assert b.dtypes[0] == "uint8" and b.count == 1


def _to_wgs84(src: Path, dst: Path) -> Path:
    with rasterio.open(src) as ds:
        transform, width, height = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height, *ds.bounds)
        profile = ds.profile.copy()
        profile.update(crs="EPSG:4326", transform=transform, width=width, height=height)
        with rasterio.open(dst, "w", **profile) as out:
            for band in range(1, ds.count + 1):
                reproject(rasterio.band(ds, band), rasterio.band(out, band), resampling=Resampling.nearest)
            out.descriptions = ds.descriptions
    return dst


@pytest.mark.parametrize("case", ["utm", "wgs84", "smaller_than_tile", "not_stride_multiple", "rotated", "south_up"])
def test_output_grid_equals_input_grid(case: str, tmp_path: Path, crop, zion_bundle_path: Path) -> None:
    if case == "utm":
        scene = ZION
    elif case == "wgs84":
        scene = _to_wgs84(crop(ZION, Window(0, 0, 300, 200)), tmp_path / "wgs84.tif")
    elif case == "smaller_than_tile":
        scene = crop(ZION, Window(100, 50, 45, 37))
    elif case == "not_stride_multiple":
        scene = crop(ZION, Window(3, 5, 211, 157))
    elif case == "rotated":
        rotated = Affine.translation(301905, 4123365) @ Affine.rotation(20) @ Affine.scale(30, -30)
        scene = crop(ZION, Window(0, 0, 150, 120), transform=rotated)
    else:
        scene = crop(ZION, Window(0, 0, 150, 120), transform=Affine(30, 0, 301905, 0, 30, 4111245))
    out = tmp_path / "classes.tif"
    summary = predict(scene, out, model=zion_bundle_path, tile=64, overlap=16)
    _assert_same_grid(scene, out)
    classes = read_band(out)
    with rasterio.open(scene) as ds:
        valid = (ds.read_masks() > 0).all(axis=0)          # every band valid (geoseg.io.rasters.valid_mask)
    assert set(np.unique(classes[valid])) <= {1, 2, 3, 4}
    assert (classes[~valid] == 255).all()
    assert sum(summary.pixels_per_class.values()) == valid.sum()


def test_class_map_is_independent_of_block_and_batch_size(tmp_path: Path, zion_bundle_path: Path) -> None:
    runs = {}
    for block, batch in [(16, 1), (64, 1), (512, 1), (1024, 3), (128, 8)]:
        out, probs = tmp_path / f"c{block}_{batch}.tif", tmp_path / f"p{block}_{batch}.tif"
        predict(ZION, out, model=zion_bundle_path, tile=64, overlap=16, output_block=block, batch_size=batch,
                probabilities=probs)
        with rasterio.open(out) as c, rasterio.open(probs) as p:
            runs[block, batch] = (c.read(), p.read())
    reference_classes, reference_probs = runs[16, 1]
    for (block, batch), (classes, probs) in runs.items():
        assert np.array_equal(classes, reference_classes), (block, batch)
        if batch == 1:  # the same forward passes: every byte identical
            assert np.array_equal(probs, reference_probs), block
        else:  # batched convolutions may round differently in the last float bit
            assert np.abs(probs.astype(int) - reference_probs).max() <= 1


def test_nodata_frame_is_skipped_and_written_as_nodata(tmp_path: Path) -> None:
    meta = tiny_meta(["red", "green", "blue"], 3, mean=80.0, std=40.0, input_dtype="uint8", gsd=300.0)
    model = tmp_path / "rgb.safetensors"
    tiny_bundle(meta).save(model)
    out = tmp_path / "classes.tif"
    summary = predict(LANDSAT7_FRAME, out, model=model, tile=64, overlap=16)
    with rasterio.open(LANDSAT7_FRAME) as ds:
        valid = (ds.read_masks() > 0).all(axis=0)          # every band valid (geoseg.io.rasters.valid_mask)
    grid = TileGrid(valid.shape[0], valid.shape[1], 64, 16)
    empty = sum(1 for t in grid if not valid[t.slices].any())
    assert empty > 0 and summary.tiles_skipped == empty and summary.tiles_run == len(grid) - empty
    classes = read_band(out)
    assert (classes[~valid] == 255).all()
    assert (classes[valid] != 255).all()
    with rasterio.open(out) as ds:
        assert ds.nodata == 255
        scheme = ClassScheme.from_dataset(ds)
        assert scheme is not None and [c.name for c in scheme.classes] == ["water", "developed", "barren"]
        assert ds.colormap(1)[1][:3] == (0x46, 0x6B, 0x9F)
        assert ds.overviews(1) or max(ds.width, ds.height) <= 512


def test_probabilities_are_uint8_per_class(tmp_path: Path, zion_bundle_path: Path) -> None:
    out, probs = tmp_path / "c.tif", tmp_path / "p.tif"
    predict(ZION, out, model=zion_bundle_path, probabilities=probs, tile=64, overlap=16)
    with rasterio.open(probs) as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint8" and ds.descriptions[0] == "water"
        data = ds.read().astype(int)
    total = data.sum(axis=0)
    assert total.min() >= 255 - 4 and total.max() <= 255 + 4  # rounding of 4 classes
    assert np.array_equal(np.argmax(data, axis=0) + 1 == read_band(out), np.ones_like(total, bool)) or \
        (np.argmax(data, axis=0) + 1 == read_band(out)).mean() > 0.99


def test_existing_output_is_never_overwritten(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "c.tif"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        predict(ZION, out, model=zion_bundle_path)
    assert out.read_bytes() == b"precious"
    predict(ZION, out, model=zion_bundle_path, overwrite=True, tile=64, overlap=16)
    assert read_band(out).shape == (404, 1128)


def test_failure_mid_run_leaves_nothing(tmp_path: Path, zion_bundle_path: Path) -> None:
    class Boom:
        def start(self, total: int, unit: str = "tiles", megapixels: float | None = None) -> None:
            self.n = 0

        def advance(self, n: int = 1) -> None:
            self.n += n
            if self.n > 5:
                raise RuntimeError("cancelled")

        def done(self, **summary: object) -> None:
            pass

    with pytest.raises(RuntimeError, match="cancelled"):
        predict(ZION, tmp_path / "c.tif", model=zion_bundle_path, tile=64, overlap=16,
                probabilities=tmp_path / "p.tif", reporter=Boom())
    assert list(tmp_path.iterdir()) == [zion_bundle_path]


def test_band_mapping_and_mismatch(tmp_path: Path, crop, zion_bundle_path: Path) -> None:
    five = tmp_path / "five.tif"
    with rasterio.open(ZION) as ds:
        profile = ds.profile.copy()
        profile.update(count=5)
        data = ds.read()
        with rasterio.open(five, "w", **profile) as out:
            out.write(np.concatenate([data[:1], data]))  # an extra band in front
    with pytest.raises(ModelMismatchError, match="5 bands, the model expects 4 .*; pass bands with 4 band numbers"):
        predict(five, tmp_path / "a.tif", model=zion_bundle_path)
    predict(five, tmp_path / "b.tif", model=zion_bundle_path, bands=[2, 3, 4, 5], tile=64, overlap=16)
    predict(ZION, tmp_path / "c.tif", model=zion_bundle_path, tile=64, overlap=16)
    assert np.array_equal(read_band(tmp_path / "b.tif"), read_band(tmp_path / "c.tif"))


def test_bad_settings_are_input_errors(zion_bundle_path: Path) -> None:
    with pytest.raises(ParameterError, match="^overlap 40: must be between 0 and half of tile 64$"):
        Predictor(zion_bundle_path, overlap=40, tile=64)
    with pytest.raises(ParameterError, match="^batch_size 0: must be at least 1$"):
        Predictor(zion_bundle_path, batch_size=0)


def test_unet_tile_must_fit_the_encoder(tmp_path: Path) -> None:
    meta = tiny_meta(["blue", "green", "red", "nir"], 2, architecture="Unet")
    model = tmp_path / "unet.safetensors"
    tiny_bundle(meta).save(model)
    with pytest.raises(ParameterError, match="^tile 60: must be a multiple of 8 for Unet; try 56$"):
        Predictor(model, tile=60)
    out = tmp_path / "c.tif"
    predict(ZION, out, model=model, tile=64, overlap=16)
    assert read_band(out).shape == (404, 1128)


def test_qml_style_lists_every_class(tmp_path: Path, zion_bundle_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from geoseg.model.loading import read_meta
    from geoseg.io.qml import write_qml

    qml = write_qml(read_meta(zion_bundle_path).scheme, tmp_path / "landcover.tif")
    entries = ET.parse(qml).getroot().findall(".//paletteEntry")
    assert qml.name == "landcover.qml"
    assert [(e.get("value"), e.get("label"), e.get("color")) for e in entries] == [
        ("1", "water", "#466b9f"), ("2", "developed", "#d99282"), ("3", "barren", "#b3ac9f"), ("4", "forest", "#68ab5f")]


def test_pipelined_and_sequential_runs_write_the_same_bytes(tmp_path: Path, zion_bundle_path: Path) -> None:
    predictor = Predictor(zion_bundle_path, tile=64, overlap=16, batch_size=2)
    for pipelined in (True, False):
        predictor.predict(ZION, tmp_path / f"c{pipelined}.tif",
                          probabilities=tmp_path / f"p{pipelined}.tif", pipelined=pipelined)
    for name in ("c", "p"):
        with rasterio.open(tmp_path / f"{name}True.tif") as a, rasterio.open(tmp_path / f"{name}False.tif") as b:
            assert np.array_equal(a.read(), b.read())


def test_reader_errors_reach_the_caller(tmp_path: Path, zion_bundle_path: Path, monkeypatch) -> None:
    import geoseg.inference.source as module

    calls = {"n": 0}
    real = module.read_tile

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError("disk went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "read_tile", failing)
    with pytest.raises(OSError, match="disk went away"):
        predict(ZION, tmp_path / "c.tif", model=zion_bundle_path, tile=64, overlap=16)
    assert not (tmp_path / "c.tif").exists()
    assert [p.name for p in tmp_path.iterdir()] == [zion_bundle_path.name]


def test_tolerable_mismatch_is_a_warning(tmp_path: Path, crop) -> None:
    from geoseg.progress import GeosegWarning

    meta = tiny_meta(["blue", "green", "red", "nir"], 2, gsd=18.0, mean=10000.0, std=2500.0)  # scene is 30 m
    model = tmp_path / "m.safetensors"
    tiny_bundle(meta).save(model)
    with pytest.warns(GeosegWarning, match="resolution 30.00 m differs from the model's 18.00 m"):
        predict(crop(ZION, Window(0, 0, 100, 80)), tmp_path / "c.tif", model=model, tile=64, overlap=16)


def test_block_size_is_a_deprecated_name_of_output_block(tmp_path: Path, zion_bundle_path: Path) -> None:
    predictor = Predictor(zion_bundle_path, tile=64, overlap=16)
    predictor.predict(ZION, tmp_path / "new.tif", output_block=128)
    with pytest.warns(FutureWarning, match="block_size is deprecated.*output_block"):
        predictor.predict(ZION, tmp_path / "old.tif", block_size=128)
    assert (tmp_path / "new.tif").read_bytes() == (tmp_path / "old.tif").read_bytes()
    with pytest.raises(ParameterError, match="^output_block 8: must be at least 16"):
        predictor.predict(ZION, tmp_path / "small.tif", output_block=8)
