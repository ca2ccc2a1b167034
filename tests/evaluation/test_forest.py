"""The RandomForest classic method: trained from labels (raster or polygons with ids or names), a class map in
the labels' classes written block by block, the same in evaluate; clear errors when labels or sklearn lack."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from rasterio.windows import Window
from shapely.geometry import shape

from geoseg.errors import InputError, InputFileError, ParameterError
from geoseg.evaluation import forest
from geoseg.evaluation.evaluate import evaluate
from geoseg.evaluation.forest import RandomForestMethod, feature_names, pixel_features
from geoseg.evaluation.labels import labels_scheme
from geoseg.io.legend import ClassInfo, ClassScheme

from tests.conftest import NLCD, ZION, ZION_LABELS, write_crop

CROP = Window(0, 0, 256, 160)


@pytest.fixture
def crop(tmp_path: Path) -> tuple[Path, Path]:
    return write_crop(ZION, tmp_path / "scene.tif", CROP), write_crop(ZION_LABELS, tmp_path / "labels.tif", CROP)


def _named_polygons(labels: Path, out: Path) -> Path:
    """Every third region of the real labels, its class *name* in 'cover' (as an analyst's layer has it)."""
    with rasterio.open(labels) as ds:
        data, transform, crs = ds.read(1), ds.transform, ds.crs
    regions = sorted(((shape(g), int(v)) for g, v in shapes(data, transform=transform) if v != 255),
                     key=lambda r: -r[0].area)[::3]
    gpd.GeoDataFrame({"cover": [NLCD[v - 1][0].title() for _, v in regions]}, geometry=[g for g, _ in regions],
                     crs=crs).to_file(out)
    return out


def test_features_add_indices_only_where_band_names_allow() -> None:
    data = np.array([[[1.0]], [[2.0]], [[3.0]], [[5.0]]], np.float32)
    assert feature_names(["blue", "green", "red", "nir"]) == ["blue", "green", "red", "nir", "NDVI", "NDWI"]
    np.testing.assert_allclose(pixel_features(data, ["blue", "green", "red", "nir"])[0], [1, 2, 3, 5, 0.25, -3 / 7])
    assert pixel_features(data, [None, None, None, None]).shape == (1, 4)
    assert feature_names([None, "x"]) == ["band 1", "x"]


def test_cli_maps_the_scene_in_the_polygons_classes(tmp_path: Path, crop: tuple[Path, Path]) -> None:
    scene, labels = crop
    polygons = _named_polygons(labels, tmp_path / "polygons.gpkg")
    out = tmp_path / "rf.tif"
    run = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(scene), "-o", str(out), "--method",
                          "random-forest", "--labels", str(polygons), "--label-column", "cover", "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["scene.tif", "labels.tif", "polygons.gpkg", "rf.tif", "rf.qml", "rf.stac.json", "rf.tif.aux.xml"])
    with rasterio.open(out) as ds:
        scheme = ClassScheme.from_dataset(ds)
        predicted = ds.read(1)
    names = [c.name for c in scheme.classes]
    assert names == sorted(names, key=str.lower) and "Forest" in names and "Shrubland" in names
    with rasterio.open(labels) as ds:
        reference = ds.read(1)
    by_name = {c.name.lower(): c.id for c in scheme.classes}
    as_nlcd = {by_name[n]: i + 1 for i, (n, _) in enumerate(NLCD) if n in by_name}
    mapped = np.vectorize(lambda v: as_nlcd.get(int(v), 0))(predicted)
    labelled = reference != 255
    assert np.mean(mapped[labelled] == reference[labelled]) > 0.6       # a real classifier, not a constant
    stac = json.loads((tmp_path / "rf.stac.json").read_text())
    assert "random-forest" in json.dumps(stac)


def test_map_is_the_same_whatever_the_block_size(tmp_path: Path, crop: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    scene, labels = crop
    RandomForestMethod(labels, trees=10).predict(scene, tmp_path / "a.tif", qml=False, stac=False)
    monkeypatch.setattr(forest, "BLOCK_ROWS", 16)                   # ten blocks instead of one
    RandomForestMethod(labels, trees=10).predict(scene, tmp_path / "b.tif", qml=False, stac=False)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        # the same forest; only exact vote ties may fall either way (trees vote in parallel, summed in any order)
        assert np.mean(a.read(1) == b.read(1)) > 0.99
        assert a.nodata == 255 and (a.read(1) == 255).sum() == 0


def test_evaluate_scores_a_forest_trained_on_other_labels(tmp_path: Path, crop: tuple[Path, Path]) -> None:
    scene, labels = crop
    polygons = _named_polygons(labels, tmp_path / "polygons.gpkg")
    # the reference raster holds bare NLCD ids: the legend says which id each polygon name stands for
    nlcd = ClassScheme(classes=[ClassInfo(id=i + 1, name=n, color=c) for i, (n, c) in enumerate(NLCD)])
    result = evaluate("random-forest", scene, labels, tmp_path / "report", training_labels=polygons,
                      label_column="cover", legend=nlcd)
    assert 0.5 < result.scores.overall_accuracy <= 1 and result.info["model"] == "random-forest (polygons.gpkg)"
    with pytest.raises(ParameterError, match="are the reference labels"):
        evaluate("random-forest", scene, labels, tmp_path / "r2", training_labels=labels)
    with pytest.raises(InputError, match="method learns from labels: pass training_labels"):
        evaluate("random-forest", scene, labels, tmp_path / "r3")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_labels_are_required_and_a_missing_sklearn_says_what_to_install(tmp_path: Path, crop: tuple[Path, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scene, labels = crop
    run = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(scene), "-o", str(tmp_path / "x.tif"),
                          "--method", "random-forest"], capture_output=True, text=True)
    assert run.returncode == 2 and "--method random-forest: learns from labels: pass --labels" in run.stderr
    run = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(scene), "-o", str(tmp_path / "x.tif"),
                          "--method", "ndvi-otsu", "--labels", str(labels)], capture_output=True, text=True)
    assert run.returncode == 2 and "only --method random-forest learns from labels" in run.stderr
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    with pytest.raises(InputError, match=r"needs scikit-learn: pip install 'geoseg\[train\]'"):
        RandomForestMethod(labels).predict(scene, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_the_labels_name_their_classes(tmp_path: Path, crop: tuple[Path, Path]) -> None:
    """Without a legend, a label raster's ids and a numeric class column become "class N"; ignored ids drop out."""
    _, labels = crop
    with rasterio.open(labels) as ds:
        present = sorted(set(np.unique(ds.read(1)).tolist()) - {255})
    scheme = labels_scheme(labels, ignore_ids=[present[0]])
    assert [c.id for c in scheme.classes] == present[1:] and scheme.classes[0].name == f"class {present[1]}"
    frame = gpd.read_file(_named_polygons(labels, tmp_path / "p.gpkg"))
    frame.assign(code=[7 if n == "Forest" else 3 for n in frame["cover"]]).to_file(tmp_path / "ids.gpkg")
    assert labels_scheme(tmp_path / "ids.gpkg", "code").names() == {3: "class 3", 7: "class 7"}
    with pytest.raises(InputFileError, match="cannot read the class column 'kind'"):
        labels_scheme(tmp_path / "ids.gpkg", "kind")
