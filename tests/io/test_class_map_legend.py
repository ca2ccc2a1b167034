"""Class maps explain themselves to tools without geoseg: colour table, category names, attribute table.

GeoTIFF keeps category names and the raster attribute table in GDAL's PAM sidecar (``.tif.aux.xml``);
these tests read them the way other tools do: with the ``gdalinfo`` program (GDAL's own reader, skipped
where it is not installed; CI installs it with QGIS) and by parsing the sidecar GDAL wrote.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geoseg.classic import ClassicMethod
from geoseg.inference.predictor import predict
from geoseg.io.cog import ClassMapWriter
from geoseg.io.legend import ClassInfo, ClassScheme
from tests.conftest import ZION, read_band

SCHEME = ClassScheme(classes=[ClassInfo(id=1, name="water", color="#466b9f"),
                              ClassInfo(id=4, name="forest & <woods>", color="#68ab5f"),
                              ClassInfo(id=7, name="cultivated", color="#ab6c28")], nodata_id=255)


def gdalinfo(path: Path) -> dict:
    """``gdalinfo -json`` of ``path``: what GDAL itself reports to every tool built on it."""
    program = shutil.which("gdalinfo")
    if program is None:
        pytest.skip("gdalinfo is not installed (apt-get install gdal-bin; .ci/install_qgis.sh brings it)")
    return json.loads(subprocess.run([program, "-json", str(path)], check=True, capture_output=True,
                                     text=True).stdout)


def rat_rows(path: Path) -> list[dict[str, str]]:
    """The raster attribute table GDAL wrote into ``path``'s ``.aux.xml``, one dict per row."""
    band = ET.parse(f"{path}.aux.xml").getroot().find("PAMRasterBand")
    table = band.find("GDALRasterAttributeTable")
    names = [f.findtext("Name") for f in table.findall("FieldDefn")]
    return [dict(zip(names, (f.text or "" for f in row.findall("F")))) for row in table.findall("Row")]


def counts_of(path: Path) -> dict[int, int]:
    values, counts = np.unique(read_band(path), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def assert_rat_matches_pixels(path: Path, scheme: ClassScheme) -> None:
    """One row per class, in id order, with its name, colour and the exact pixel count of the file."""
    counts = counts_of(path)
    rows = rat_rows(path)
    assert [int(r["Value"]) for r in rows] == [c.id for c in scheme.classes]
    for row, info in zip(rows, scheme.classes):
        assert row["Class_Name"] == info.name
        assert (int(row["Red"]), int(row["Green"]), int(row["Blue"]), int(row["Alpha"])) == (*info.rgb, 255)
        assert int(float(row["Count"])) == counts.get(info.id, 0)


def write_windows(path: Path, classes: np.ndarray, block: int = 64) -> None:
    """Write ``classes`` through the writer in row/column windows, the way the predictor does."""
    profile = {"width": classes.shape[1], "height": classes.shape[0], "crs": "EPSG:32612",
               "transform": Affine(30, 0, 300000, 0, -30, 4100000)}
    writer = ClassMapWriter(path, profile, SCHEME, block)
    for y in range(0, classes.shape[0], block):
        for x in range(0, classes.shape[1], block):
            writer.write(classes[y:y + block, x:x + block], y, x)
    writer.finish()


@pytest.fixture
def class_map(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    classes = rng.choice(np.array([1, 4, 255], np.uint8), size=(150, 230), p=[0.2, 0.7, 0.1])  # no class 7
    path = tmp_path / "classes.tif"
    write_windows(path, classes)
    return path, classes


def test_pixels_are_written_unchanged_with_colour_table_and_tags(class_map: tuple[Path, np.ndarray]) -> None:
    path, classes = class_map
    assert np.array_equal(read_band(path), classes)
    with rasterio.open(path) as ds:
        assert ds.nodata == 255
        assert ds.colormap(1)[4] == (0x68, 0xAB, 0x5F, 255) and ds.colormap(1)[255][3] == 0
        assert ClassScheme.from_dataset(ds) == SCHEME
    assert not list(path.parent.glob("*.stage*")), "the staging file and its sidecar are removed"


def test_attribute_table_counts_every_pixel_exactly(class_map: tuple[Path, np.ndarray]) -> None:
    path, _ = class_map
    assert_rat_matches_pixels(path, SCHEME)
    assert int(rat_rows(path)[2]["Count"]) == 0          # a class with no pixel stays in the legend


def test_gdal_reports_category_names_and_the_attribute_table(class_map: tuple[Path, np.ndarray]) -> None:
    path, classes = class_map
    info = gdalinfo(path)
    band = info["bands"][0]
    assert band["categories"] == ["", "water", "", "", "forest & <woods>", "", "", "cultivated"]
    assert band["colorInterpretation"] == "Palette" and band["noDataValue"] == 255
    rat = info["rat"]
    assert rat["tableType"] == "thematic"
    usages = {f["name"]: f["usage"] for f in rat["fieldDefn"]}
    assert usages == {"Value": 5, "Count": 1, "Class_Name": 2, "Red": 6, "Green": 7, "Blue": 8, "Alpha": 9}
    forest = next(r["f"] for r in rat["row"] if r["f"][0] == 4)
    assert forest[1] == int((classes == 4).sum()) and forest[2] == "forest & <woods>"


def test_predicted_and_classic_maps_carry_exact_attribute_tables(tmp_path: Path, zion_bundle_path: Path) -> None:
    model_map, index_map = tmp_path / "model.tif", tmp_path / "ndwi.tif"
    summary = predict(ZION, model_map, model=zion_bundle_path, tile=64, overlap=16)
    with rasterio.open(model_map) as ds:
        scheme = ClassScheme.from_dataset(ds)
    assert_rat_matches_pixels(model_map, scheme)
    assert {r["Class_Name"]: int(float(r["Count"])) for r in rat_rows(model_map) if float(r["Count"])} \
        == summary.pixels_per_class
    method = ClassicMethod("ndwi-otsu")
    method.predict(ZION, index_map)
    assert_rat_matches_pixels(index_map, method.scheme)
