"""The Processing algorithms through ``processing.run``, as the modeler, batch mode and qgis_process use them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed: run .ci/install_qgis.sh, then "
                    "QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest qgis_plugin/tests")

import processing  # noqa: E402
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer  # noqa: E402

from geoseg_qgis import ICON  # noqa: E402
from geoseg_qgis.processing.algorithms import CANCELED  # noqa: E402

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


def test_algorithms_show_the_geoseg_icon(provider: Any) -> None:
    """Not the generic gear: the toolbox, modeler and history show each algorithm's own icon."""
    assert provider.svgIconPath() == ICON
    for algorithm in provider.algorithms():
        assert algorithm.svgIconPath() == ICON and not algorithm.icon().isNull()


class _Feedback(QgsProcessingFeedback):
    """Records what the algorithm tells the Processing log."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []

    def pushWarning(self, warning: str) -> None:  # noqa: N802 - QGIS's name
        self.warnings.append(warning)
        super().pushWarning(warning)


def test_cancel_is_reported_in_the_log(provider: Any, sample_tile: Path, model: dict, worker_env: str,
                                       tmp_path: Path) -> None:
    """Processing logs only "Execution failed after N s" for a canceled run; the algorithm says why first."""
    feedback = _Feedback()
    feedback.progressChanged.connect(lambda percent: feedback.cancel())  # at the first tile
    result = processing.run("geoseg:segment", {"INPUT": str(sample_tile), "MODEL": model["path"], "TILE": 64,
                                               "OVERLAP": 8, "DEVICE": 1, "OUTPUT": str(tmp_path / "c.tif")},
                            feedback=feedback)
    assert result == {}, result
    assert feedback.warnings == [CANCELED]
    assert list(tmp_path.iterdir()) == []
