"""Every class map gets a STAC Item and a QGIS style beside it, unless switched off.

Validation: the core Item schema is checked offline with the schemas pystac ships. The projection, raster
and classification extension schemas live on stac-extensions.github.io, which CI cannot be assumed to
reach, so their fields are checked here against the extension specs (projection v2.0.0, raster v1.1.0,
classification v2.0.0); ``test_item_validates_online`` runs pystac's full validation where the schema
host is reachable and skips with a reason elsewhere.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from geoseg.errors import OutputExistsError
from geoseg.inference.predictor import predict
from geoseg.io.legend import ClassScheme, read_pixel_counts
from geoseg.model.loading import read_meta
from tests.conftest import ROOT, ZION, read_band, tiny_bundle, tiny_meta

EXTENSIONS = {"projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
              "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
              "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json"}
RASTER_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
                "float64", "cint16", "cint32", "cfloat32", "cfloat64", "other"}


METRICS = {"mean_iou": 0.5, "overall_accuracy": 0.75, "evaluated_on": ["a test block"]}


@pytest.fixture
def scored_bundle(tmp_path: Path) -> Path:
    """The tiny Zion bundle with validation metrics recorded, as a trained bundle has."""
    meta = tiny_meta(["blue", "green", "red", "nir"], 4, gsd=30.0, mean=10000.0, std=2500.0, input_dtype="uint16")
    path = tmp_path / "scored.safetensors"
    tiny_bundle(meta.model_copy(update={"metrics": METRICS})).save(path)
    return path


@pytest.fixture
def product(tmp_path: Path, scored_bundle: Path) -> Path:
    out = tmp_path / "maps" / "landcover.tif"
    out.parent.mkdir()
    predict(ZION, out, model=scored_bundle, tile=64, overlap=16, probabilities=out.with_name("probs.tif"))
    return out


def load_item(class_map: Path) -> dict:
    return json.loads(class_map.with_suffix(".stac.json").read_text())


def check_extension_fields(item: dict) -> None:
    """The fields of the three extensions, as their specs define them."""
    assert set(EXTENSIONS.values()) <= set(item["stac_extensions"])
    props = item["properties"]
    assert re.fullmatch(r"[A-Z]+:[0-9A-Za-z.\-]+", props["proj:code"]) or props.get("proj:wkt2")
    assert len(props["proj:shape"]) == 2 and all(isinstance(v, int) and v > 0 for v in props["proj:shape"])
    assert len(props["proj:transform"]) in (6, 9) and len(props["proj:bbox"]) in (4, 6)
    for asset in item["assets"].values():
        for band in asset.get("raster:bands", []):
            assert band["data_type"] in RASTER_TYPES and band.get("sampling", "area") in ("area", "point")
            classes = band.get("classification:classes", [])
            assert len({c["value"] for c in classes}) == len(classes)
            for c in classes:
                assert isinstance(c["value"], int) and re.fullmatch(r"[0-9A-Za-z\-_]+", c["name"])
                assert re.fullmatch(r"[0-9A-Fa-f]{6}", c.get("color_hint", "000000"))
                assert isinstance(c.get("count", 0), int) and c.get("count", 0) >= 0
                assert 0 <= c.get("percentage", 0) <= 100 and isinstance(c.get("nodata", False), bool)


def test_item_describes_the_map_its_classes_model_and_scene(product: Path, scored_bundle: Path) -> None:
    item = load_item(product)
    JsonSchemaSTACValidator().validate_core(item, pystac.STACObjectType.ITEM, item["stac_version"])
    check_extension_fields(item)
    folder = product.parent
    for asset in item["assets"].values():
        assert not Path(asset["href"]).is_absolute() and (folder / asset["href"]).is_file()
    assert {"classes", "attributes", "style", "probabilities"} <= set(item["assets"])
    scene_link = next(link for link in item["links"] if link["title"] == "input scene")
    assert scene_link["rel"] == "derived_from" and (folder / scene_link["href"]).resolve() == ZION.resolve()

    model = item["properties"]["geoseg:model"]
    assert model["name"] == read_meta(scored_bundle).name and model["metrics"] == METRICS
    assert (folder / model["file"]).resolve() == scored_bundle.resolve()
    with rasterio.open(product) as ds:
        assert item["properties"]["proj:code"] == f"EPSG:{ds.crs.to_epsg()}"
        assert item["properties"]["proj:shape"] == [ds.height, ds.width]
        assert item["properties"]["proj:transform"] == list(ds.transform)[:6]
        scheme = ClassScheme.from_dataset(ds)
    lon, lat = np.mean(item["geometry"]["coordinates"][0][:-1], axis=0)
    assert -114 < lon < -112.5 and 37 < lat < 37.6            # Zion National Park, Utah

    band = item["assets"]["classes"]["raster:bands"][0]
    assert band["nodata"] == 255 and band["data_type"] == "uint8" and band["spatial_resolution"] == 30
    values, counts = np.unique(read_band(product), return_counts=True)
    pixels = dict(zip(values.tolist(), counts.tolist()))
    classes = {c["value"]: c for c in band["classification:classes"]}
    for info in scheme.classes:
        assert classes[info.id]["title"] == info.name and classes[info.id]["color_hint"] == info.color[1:].upper()
        assert classes[info.id]["count"] == pixels.get(info.id, 0) == read_pixel_counts(product).get(info.id, 0)
    assert classes[255]["nodata"] is True
    assert sum(c["count"] for c in classes.values()) == product_size(product)


def product_size(path: Path) -> int:
    with rasterio.open(path) as ds:
        return ds.width * ds.height


def test_pystac_reads_the_item_back(product: Path) -> None:
    item = pystac.Item.from_file(str(product.with_suffix(".stac.json")))
    assert Path(item.assets["classes"].get_absolute_href()).resolve() == product.resolve()


def test_style_is_written_by_default(product: Path) -> None:
    assert product.with_suffix(".qml").is_file()
    assert 'label="water"' in product.with_suffix(".qml").read_text()


def test_classic_method_item_names_the_method_and_threshold(tmp_path: Path) -> None:
    from geoseg.classic import ClassicMethod

    out = tmp_path / "water.tif"
    summary = ClassicMethod("ndwi-otsu").predict(ZION, out)
    item = load_item(out)
    JsonSchemaSTACValidator().validate_core(item, pystac.STACObjectType.ITEM, item["stac_version"])
    check_extension_fields(item)
    method = item["properties"]["geoseg:method"]
    assert method["name"] == "ndwi-otsu" and method["parameters"]["threshold"] == summary.threshold
    names = [c["name"] for c in item["assets"]["classes"]["raster:bands"][0]["classification:classes"]]
    assert names == ["water", "not_water", "nodata"]         # the extension's names allow no spaces


def test_sidecars_can_be_switched_off(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "plain.tif"
    predict(ZION, out, model=zion_bundle_path, tile=64, overlap=16, stac=False, qml=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.tif", "plain.tif.aux.xml", "zion_tiny.safetensors"]


def test_cli_switches(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "cli.tif"
    proc = subprocess.run([sys.executable, "-m", "geoseg", "predict", str(ZION), "-o", str(out), "--model",
                           str(zion_bundle_path), "--no-stac", "--tile", "64", "--overlap", "16", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert out.with_suffix(".qml").is_file() and not out.with_suffix(".stac.json").exists()


def test_an_existing_sidecar_is_refused_before_the_run(tmp_path: Path, zion_bundle_path: Path) -> None:
    out = tmp_path / "landcover.tif"
    out.with_suffix(".stac.json").write_text("{}")
    Path(f"{out}.aux.xml").write_text("<PAMDataset/>")
    with pytest.raises(OutputExistsError, match="landcover.stac.json"):
        predict(ZION, out, model=zion_bundle_path, tile=64, overlap=16)
    with pytest.raises(OutputExistsError, match="aux.xml"):
        predict(ZION, out, model=zion_bundle_path, tile=64, overlap=16, stac=False)
    assert not out.exists() and out.with_suffix(".stac.json").read_text() == "{}"
    predict(ZION, out, model=zion_bundle_path, tile=64, overlap=16, overwrite=True)
    assert load_item(out)["id"] == "landcover" and "<Category>" in Path(f"{out}.aux.xml").read_text()


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_item_validates_online(product: Path) -> None:
    if not _reachable("stac-extensions.github.io"):
        pytest.skip("stac-extensions.github.io is not reachable: the extension schemas cannot be fetched "
                    "(their fields are checked offline by the other tests)")
    item = pystac.Item.from_file(str(product.with_suffix(".stac.json")))
    assert item.validate()
