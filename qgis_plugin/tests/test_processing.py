"""The Processing algorithms through ``processing.run``, as the modeler, batch mode and qgis_process use them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed: run .ci/install_qgis.sh, then "
                    "QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest qgis_plugin/tests")

import processing  # noqa: E402
from osgeo import gdal  # noqa: E402
from qgis.core import (QgsCategorizedSymbolRenderer, QgsProcessingException, QgsProcessingFeedback,  # noqa: E402
                       QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer)

from conftest import RECTS, write_objects_scene  # noqa: E402
from geoseg_qgis import ICON  # noqa: E402
from geoseg_qgis.processing.algorithms import CANCELED  # noqa: E402
from geoseg_qgis.task import GeosegTask  # noqa: E402

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


def _objects(path: Path) -> list[tuple]:
    """Each object's class, score, area and outline: what two runs on one scene must agree on."""
    layer = QgsVectorLayer(str(path), "objects", "ogr")
    assert layer.isValid(), path
    return sorted((f["class_name"], f["score"], f["area_m2"], f.geometry().asWkt(3)) for f in layer.getFeatures())


def _loaded(path: Path) -> Any:
    [layer] = [la for la in QgsProject.instance().mapLayers().values() if la.source().split("|")[0] == str(path)]
    return layer


@pytest.mark.slow
def test_detect_objects_gives_what_the_dialog_gives(provider: Any, plugin: Any, objects_scene: Path,
                                                    worker_env: str, tmp_path: Path, wait_until: Any) -> None:
    objects, ids = tmp_path / "alg.gpkg", tmp_path / "alg_ids.tif"
    result = processing.runAndLoadResults("geoseg:detect", {"INPUT": str(objects_scene), "OUTPUT": str(objects),
                                                            "INSTANCES": str(ids)})
    assert result["N_OBJECTS"] == len(RECTS)
    layer = _loaded(objects)  # loaded and styled as the dialog styles it
    assert isinstance(layer.renderer(), QgsCategorizedSymbolRenderer)
    assert [c.value() for c in layer.renderer().categories()] == ["object"]
    assert isinstance(_loaded(ids).renderer(), QgsSingleBandPseudoColorRenderer)

    scene = QgsRasterLayer(str(objects_scene), "houses", "gdal")
    QgsProject.instance().addMapLayer(scene)
    dialog = plugin.show_dialog(objects=True)
    dialog.layer.setLayer(scene)
    dialog.objects.setFilePath(str(tmp_path / "dialog.gpkg"))
    dialog.ids_on.setChecked(True)
    dialog.ids.setFilePath(str(tmp_path / "dialog_ids.tif"))
    wait_until(dialog.segment_button.isEnabled, timeout=180)
    task = dialog.segment()
    wait_until(lambda: task not in GeosegTask.alive, timeout=300)
    assert task.error is None
    assert len(_objects(objects)) == len(RECTS) and _objects(objects) == _objects(tmp_path / "dialog.gpkg")
    same = gdal.Open(str(ids)).ReadAsArray() == gdal.Open(str(tmp_path / "dialog_ids.tif")).ReadAsArray()
    assert same.all()


@pytest.mark.slow
def test_detect_objects_refusals_are_one_line(provider: Any, installation: dict, worker_env: str,
                                              tmp_path: Path) -> None:
    no_crs = write_objects_scene(tmp_path / "no_crs.tif", crs=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("geoseg:detect", {"INPUT": str(no_crs), "OUTPUT": str(out / "objects.gpkg")})
    assert str(refused.value).startswith(f"{no_crs}: bright-objects needs the scene's pixel size in metres")
    assert "\n" not in str(refused.value) and list(out.iterdir()) == []

    semantic = installation["default_model"]["path"]  # the shipped model labels pixels: named so before any run
    with pytest.raises(QgsProcessingException, match=r"is not an instance model \(its task is semantic"):
        processing.run("geoseg:detect", {"INPUT": str(no_crs), "MODEL": semantic, "OUTPUT": str(out / "objects.gpkg")})
    assert list(out.iterdir()) == []
