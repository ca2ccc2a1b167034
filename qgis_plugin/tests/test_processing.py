"""The Processing algorithms through ``processing.run``, as the modeler, batch mode and qgis_process use them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed: run .ci/install_qgis.sh, then "
                    "QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest qgis_plugin/tests")

import processing  # noqa: E402
from qgis.core import QgsProcessingException, QgsRasterLayer, QgsVectorLayer  # noqa: E402

pytestmark = pytest.mark.qgis


@pytest.fixture
def provider(plugin: Any, qgis_processing: None) -> Any:
    return plugin.provider


def test_segment_then_vectorize(provider: Any, sample_tile: Path, model: dict, worker_env: str,
                                tmp_path: Path, checked_events: list[dict]) -> None:
    classes, polygons = tmp_path / "classes.tif", tmp_path / "classes.gpkg"
    result = processing.run("geoseg:segment", {"INPUT": str(sample_tile), "MODEL": model["path"],
                                               "DEVICE": 1, "OUTPUT": str(classes)})
    assert result == {"OUTPUT": str(classes), "POLYGONS": None}
    raster = QgsRasterLayer(str(classes), "classes", "gdal")
    scene = QgsRasterLayer(str(sample_tile), "scene", "gdal")
    assert raster.isValid() and raster.extent() == scene.extent() and raster.crs() == scene.crs()

    result = processing.run("geoseg:vectorize", {"INPUT": str(classes), "MIN_AREA": 1800.0,
                                                 "OUTPUT": str(polygons)})
    assert result == {"OUTPUT": str(polygons)}
    layer = QgsVectorLayer(str(polygons), "polygons", "ogr")
    assert layer.isValid() and layer.featureCount() > 0 and layer.crs() == scene.crs()
    names = {f["class_name"] for f in layer.getFeatures()}
    assert names and names <= {c["name"] for c in model["classes"]}
    assert min(f["area_m2"] for f in layer.getFeatures()) >= 1800.0
    dones = [e for e in checked_events if e["event"] == "done"]  # each checked against events.schema.json
    assert [(d["task"], d["output"]) for d in dones] == [("predict", str(classes)), ("vectorize", str(polygons))]


def test_segment_reports_a_missing_geoseg(provider: Any, sample_tile: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from geoseg_qgis import settings

    settings.set_configured_python("")
    monkeypatch.setenv("GEOSEG_PYTHON", sys.executable)  # QGIS's own Python: no geoseg there
    with pytest.raises(QgsProcessingException, match=r"geoseg is not installed for .*worker log: "):
        processing.run("geoseg:segment", {"INPUT": str(sample_tile), "OUTPUT": str(tmp_path / "c.tif")})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("GEOSEG_PYTHON")
    with pytest.raises(QgsProcessingException, match=r"interpreter is not set"):
        processing.run("geoseg:vectorize", {"INPUT": str(sample_tile), "OUTPUT": str(tmp_path / "p.gpkg")})
