"""Objects out: polygons with instance attributes in every format, and the object-id COG."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely

from geoseg.errors import OutputExistsError, ParameterError
from geoseg.vector.objects import ObjectPredictor
from tests.objects_stub import IdDetector, class_of, id_meta, score_of, write_ids


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    ids = np.zeros((90, 120), np.uint32)
    ids[5:15, 5:25] = 1          # 10 x 20 px = 50 m² at 0.5 m
    ids[40:52, 30:36] = 2
    ids[60:80, 90:115] = 3
    ids[64:70, 98:104] = 0       # a courtyard: a hole in object 3
    return write_ids(tmp_path / "scene.tif", ids), ids


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson", ".parquet", ".fgb"])
def test_every_format_has_the_object_attributes(scene: tuple[Path, np.ndarray], tmp_path: Path, suffix: str) -> None:
    path, ids = scene
    dst = tmp_path / f"objects{suffix}"
    summary = ObjectPredictor(IdDetector(id_meta(32, 16)), score_threshold=0.0).predict(path, dst)
    frame = gpd.read_parquet(dst) if suffix == ".parquet" else pyogrio.read_dataframe(dst)
    id_column = "inst_id" if suffix == ".shp" else "instance_id"
    assert summary.n_objects == len(frame) == 3
    assert summary.color_per_class == {"building": "#d62728", "tree": "#2ca02c"}  # every class, found or not
    assert sorted(frame[id_column]) == [1, 2, 3]
    assert set(frame.columns) >= {id_column, "class_id", "class_name", "score", "area_m2"}
    frame = frame.sort_values("area_m2")
    expected_areas = sorted(float((ids == i).sum()) * 0.25 for i in (1, 2, 3))
    assert np.allclose(frame["area_m2"], expected_areas, rtol=1e-6 if suffix != ".geojson" else 1e-3)
    by_area = {round(float((ids == i).sum()) * 0.25): i for i in (1, 2, 3)}
    for _, row in frame.iterrows():
        i = by_area[round(row["area_m2"])]
        assert row["class_id"] == class_of(i)
        assert row["class_name"] == ("building" if class_of(i) == 1 else "tree")
        assert row["score"] == pytest.approx(score_of(i), abs=1e-6)
    holes = [len(g.interiors) for g in frame.geometry]
    assert sorted(holes) == [0, 0, 1]
    if suffix != ".geojson":
        with rasterio.open(path) as ds:
            left, bottom, right, top = ds.bounds
        assert all(shapely.box(left, bottom, right, top).contains(g) for g in frame.geometry)


def test_instance_raster_holds_the_polygon_ids(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, ids = scene
    dst, raster = tmp_path / "objects.gpkg", tmp_path / "ids.tif"
    ObjectPredictor(IdDetector(id_meta(32, 16)), score_threshold=0.0).predict(path, dst, instances_raster=raster)
    frame = pyogrio.read_dataframe(dst)
    with rasterio.open(raster) as out, rasterio.open(path) as src:
        written = out.read(1)
        assert out.dtypes[0] == "uint32" and out.nodata == 0
        assert out.transform == src.transform and out.crs == src.crs
        assert out.overviews(1) == [] or out.profile["tiled"]
    for _, row in frame.iterrows():
        pixels = written == row["instance_id"]
        assert pixels.sum() * 0.25 == pytest.approx(row["area_m2"])
        assert len(np.unique(ids[pixels])) == 1
    assert ((written > 0) == (ids > 0)).all()


def test_outputs_are_never_clobbered(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = scene
    dst = tmp_path / "objects.gpkg"
    dst.write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        ObjectPredictor(IdDetector(id_meta(32, 16))).predict(path, dst)
    assert dst.read_bytes() == b"mine"
    ObjectPredictor(IdDetector(id_meta(32, 16))).predict(path, dst, overwrite=True)
    assert len(pyogrio.read_dataframe(dst)) > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_score_threshold_is_checked_and_applied(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = scene
    with pytest.raises(ParameterError, match="score_threshold"):
        ObjectPredictor(IdDetector(id_meta(32, 16)), score_threshold=1.5)
    keep = {i for i in (1, 2, 3) if score_of(i) >= 0.9}
    summary = ObjectPredictor(IdDetector(id_meta(32, 16)), score_threshold=0.9).predict(path, tmp_path / "o.fgb")
    assert summary.n_objects == len(keep)
