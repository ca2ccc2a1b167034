"""Classic methods: index formulas, Otsu's threshold, region growing, and the predict/evaluate faces."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geoseg.io.legend import ClassScheme
from geoseg.classic import ClassicMethod, ndvi, ndwi, otsu_threshold, region_grow
from geoseg.errors import ParameterError
from geoseg.evaluation.evaluate import evaluate
from tests.conftest import NAIP, NLCD, ROOT, ZION, ZION_LABELS


def test_indices_are_normalised_differences() -> None:
    green, red, nir = np.array([30.0, 10.0, 0.0]), np.array([10.0, 30.0, 0.0]), np.array([10.0, 50.0, 0.0])
    assert ndvi(red, nir)[:2] == pytest.approx([0.0, 20 / 80])
    assert ndwi(green, nir)[:2] == pytest.approx([20 / 40, -40 / 60])
    assert np.isnan(ndvi(red, nir)[2])          # 0/0 is undefined, not 0


def test_otsu_splits_two_modes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.5, 0.05, 5000), rng.normal(0.3, 0.05, 1000)])
    threshold = otsu_threshold(values)
    assert -0.35 < threshold < 0.15
    assert np.mean(values[:5000] > threshold) < 0.01 and np.mean(values[5000:] > threshold) > 0.99


def test_region_grow_follows_connectivity_and_tolerance() -> None:
    values = np.array([[0.9, 0.85, 0.1, 0.8],
                       [0.8, 0.10, 0.1, 0.9],
                       [0.1, 0.10, 0.1, 0.1]])
    seeds = np.zeros_like(values, bool)
    seeds[0, 0] = True
    grown = region_grow(values, seeds, tolerance=0.2)
    # the left blob joins; the right blob is as bright but not connected; dark pixels are out of tolerance
    assert grown.tolist() == [[True, True, False, False], [True, False, False, False], [False] * 4]


def test_ndwi_otsu_writes_a_class_map_on_the_scene_grid(tmp_path: Path) -> None:
    out = tmp_path / "water.tif"
    summary = ClassicMethod("ndwi-otsu").predict(ZION, out)
    with rasterio.open(out) as result, rasterio.open(ZION) as scene:
        assert (result.crs, result.transform, result.shape) == (scene.crs, scene.transform, scene.shape)
        classes = result.read(1)
        assert ClassScheme.from_dataset(result).names() == {1: "water", 2: "not water"}
    assert set(np.unique(classes)) == {1, 2}
    assert summary.pixels_per_class["water"] == int((classes == 1).sum())
    with rasterio.open(ZION) as scene:
        green, nir = scene.read(2).astype(float), scene.read(4).astype(float)
    index = (green - nir) / (green + nir)
    # one threshold separates the classes: every "water" pixel has a higher NDWI than every other pixel
    assert index[classes == 1].min() > index[classes == 2].max()


def test_ndwi_grow_keeps_only_water_connected_to_cores(tmp_path: Path) -> None:
    from scipy import ndimage

    ClassicMethod("ndwi-otsu").predict(ZION, tmp_path / "otsu.tif")
    ClassicMethod("ndwi-grow").predict(ZION, tmp_path / "grow.tif")
    with rasterio.open(tmp_path / "otsu.tif") as a, rasterio.open(tmp_path / "grow.tif") as b:
        otsu, grow = a.read(1) == 1, b.read(1) == 1
    cores = ndimage.binary_erosion(otsu, ndimage.generate_binary_structure(2, 1))
    components, count = ndimage.label(grow)
    assert count > 0
    with_core = np.unique(components[cores & grow])
    assert set(with_core[with_core > 0]) == set(range(1, count + 1))
    assert (otsu & ~grow).sum() > 0                  # isolated speckle above the threshold is dropped


def test_bands_must_be_green_red_nir(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="^bands 1,2: index methods take green,red,nir"):
        ClassicMethod("ndvi-otsu").predict(ZION, tmp_path / "x.tif", bands=[1, 2])


def test_evaluate_a_method_against_eight_class_labels(tmp_path: Path) -> None:
    from geoseg.training.config import load_legend

    result = evaluate("ndvi-otsu", ZION, ZION_LABELS, tmp_path / "report", method_classes=(4, 5),
                      legend=load_legend(ROOT / "configs" / "zion_landcover.yaml"))
    names = [c.name for c in result.scores.per_class]
    assert names == [n for n, _ in NLCD]               # scored over all 8 label classes, not just two
    predicted = {c.name: c.predicted for c in result.scores.per_class}
    assert predicted["forest"] > 0 and predicted["shrubland"] > 0 and predicted["water"] == 0
    assert 0 < result.scores.overall_accuracy < 1
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["overall_accuracy"] == pytest.approx(result.scores.overall_accuracy)


def test_cli_predict_method(tmp_path: Path) -> None:
    out = tmp_path / "veg.tif"
    run = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(out), "--method",
                          "ndvi-otsu", "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with rasterio.open(out) as result:
        assert set(np.unique(result.read(1))) == {1, 2}
    bad = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(tmp_path / "y.tif"),
                          "--method", "kmeans"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown" in bad.stderr


def test_band_rows_change_nothing_and_block_size_is_deprecated(tmp_path: Path) -> None:
    method = ClassicMethod("ndwi-otsu")
    method.predict(ZION, tmp_path / "a.tif", band_rows=512, output_block=256)
    method.predict(ZION, tmp_path / "b.tif", band_rows=37, output_block=256)
    with pytest.warns(FutureWarning, match="block_size is deprecated"):
        method.predict(ZION, tmp_path / "c.tif", block_size=256)
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes() == (tmp_path / "c.tif").read_bytes()
    with pytest.raises(ParameterError, match="^band_rows 0: must be at least 1$"):
        method.predict(ZION, tmp_path / "d.tif", band_rows=0)


def test_a_one_mode_histogram_is_said_loudly_and_a_threshold_can_be_set(tmp_path: Path) -> None:
    """Zion is semi-arid: NDWI has one mode, and Otsu would call half of it water."""
    import warnings

    from geoseg.progress import GeosegWarning

    with pytest.warns(GeosegWarning, match="histogram has one mode, not two"):
        ClassicMethod("ndwi-otsu").predict(ZION, tmp_path / "zion.tif", qml=False, stac=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeosegWarning)
        ClassicMethod("ndwi-otsu").predict(NAIP, tmp_path / "naip.tif", qml=False, stac=False)   # two modes
        summary = ClassicMethod("ndwi-otsu").predict(ZION, tmp_path / "fixed.tif", threshold=0.1, qml=False,
                                                     stac=False)
    assert summary.threshold == pytest.approx(0.1)
    with rasterio.open(tmp_path / "fixed.tif") as ds:
        assert (ds.read(1) == ClassicMethod("ndwi-otsu").above.id).mean() < 0.01    # little water in Zion
