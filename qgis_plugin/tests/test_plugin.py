"""The plugin in a headless QGIS: load/unload, messages, a full run through the task, cancel."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("qgis.core", reason="QGIS is not installed: run .ci/install_qgis.sh, then "
                    "QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest qgis_plugin/tests")

from osgeo import gdal  # noqa: E402
from qgis.core import (Qgis, QgsApplication, QgsCategorizedSymbolRenderer,  # noqa: E402
                       QgsMultiBandColorRenderer, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer,
                       QgsSingleBandPseudoColorRenderer, QgsVectorLayer)
from qgis.PyQt.QtCore import QtDebugMsg, QtInfoMsg, QtMsgType, Qt, qInstallMessageHandler  # noqa: E402

from conftest import RECTS, write_objects_scene  # noqa: E402
from geoseg_qgis.dialog import DEFAULT_MODEL, METHOD  # noqa: E402
from geoseg_qgis.messages import HEADLINE_CHARS, pushed  # noqa: E402
from geoseg_qgis.results import ClassMapOutputs  # noqa: E402
from geoseg_qgis.task import GeosegTask  # noqa: E402
from geoseg_qgis.worker import resolve_interpreter, WorkerError  # noqa: E402
from rendering import render_result  # noqa: E402

pytestmark = pytest.mark.qgis
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "qgis_result.png"


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Warnings and errors from QGIS's message log and from Qt itself while the test runs."""
    messages: list[str] = []

    def on_log(message: str, tag: str, level: Qgis.MessageLevel) -> None:
        if level >= Qgis.Warning or tag in ("Python error", "geoseg"):
            messages.append(f"{tag}: {message}")

    def on_qt(kind: QtMsgType, context: Any, message: str) -> None:
        offscreen = message.startswith("This plugin does not support")  # the headless platform's limits
        if kind not in (QtDebugMsg, QtInfoMsg) and not offscreen:
            messages.append(f"Qt: {message}")

    log = QgsApplication.messageLog()
    log.messageReceived.connect(on_log)
    previous = qInstallMessageHandler(on_qt)
    yield messages
    qInstallMessageHandler(previous)
    log.messageReceived.disconnect(on_log)


def test_plugin_loads_and_unloads_cleanly(qgis_iface: Any, qgis_new_project: Any, worker_env: str,
                                          wait_until: Any, logged: list[str]) -> None:
    import geoseg_qgis

    registry = QgsApplication.processingRegistry()
    plugin = geoseg_qgis.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("geoseg")
    assert provider is not None
    assert sorted(a.id() for a in provider.algorithms()) == ["geoseg:detect", "geoseg:segment", "geoseg:vectorize"]
    assert all(a.shortHelpString() for a in provider.algorithms())
    menu = [call.args for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert ("geoseg", plugin.action) in menu and ("geoseg", plugin.detect_action) in menu
    dialog = plugin.show_dialog()
    assert dialog.isVisible() and dialog.queries  # asking geoseg about the default model
    plugin.unload()
    wait_until(lambda: True)
    assert registry.providerById("geoseg") is None
    assert plugin.action is None and plugin.dialog is None
    assert logged == []


def test_missing_interpreter_gives_the_documented_message(plugin: Any, sample_tile: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from geoseg_qgis import settings

    settings.set_configured_python("")
    monkeypatch.delenv("GEOSEG_PYTHON", raising=False)
    with pytest.raises(WorkerError) as expected:
        resolve_interpreter("", {})
    QgsProject.instance().addMapLayer(QgsRasterLayer(str(sample_tile), "scene", "gdal"))
    dialog = plugin.show_dialog()
    assert dialog.segment() is None
    assert dialog.status.text() == str(expected.value)
    assert "interpreter is not set" in dialog.status.text() and "GEOSEG_PYTHON" in dialog.status.text()
    missing = "/nonexistent/bin/python"
    dialog.python.setFilePath(missing)
    assert settings.configured_python() == missing
    assert dialog.segment() is None
    assert f"{missing!r} was not found" in dialog.status.text()


def test_layer_that_is_not_a_file_is_offered_a_save(plugin: Any, sample_tile: Path, worker_env: str,
                                                    tmp_path: Path) -> None:
    from osgeo import gdal

    gdal.Translate("/vsimem/in_memory_scene.tif", str(sample_tile))
    virtual = QgsRasterLayer("/vsimem/in_memory_scene.tif", "in memory", "gdal")
    assert virtual.isValid()
    QgsProject.instance().addMapLayer(virtual)
    dialog = plugin.show_dialog()
    dialog.layer.setLayer(virtual)
    assert dialog.scene_path() is None
    assert "not a local file" in dialog.status.text()
    assert not dialog.save_copy_button.isHidden()
    assert dialog.segment() is None and "save it as a GeoTIFF" in dialog.status.text()
    copy = dialog.save_copy(str(tmp_path / "copy.tif"))
    assert copy.isValid() and dialog.scene_path() == str(tmp_path / "copy.tif")
    assert copy.bandCount() == 4 and copy.extent() == virtual.extent() and copy.crs() == virtual.crs()
    gdal.Unlink("/vsimem/in_memory_scene.tif")


def test_check_shows_version_devices_and_default_model(plugin: Any, installation: dict, worker_env: str,
                                                       wait_until: Any) -> None:
    dialog = plugin.show_dialog()
    query = dialog.check()
    assert query is not None
    wait_until(lambda: query.data is not None or query.error is not None)
    text = dialog.status.text()
    assert f"geoseg {installation['geoseg_version']} (torch {installation['torch_version']})" in text
    assert "devices: cpu" in text
    default = installation["default_model"]
    assert f"default model: {default['name'] if default else 'none'}" in text


def _assert_text_not_cut(dialog: Any) -> None:
    """Every wrapped label has the height its text needs at its width (no lines cut off)."""
    QgsApplication.processEvents()
    for label in (dialog.fit_info, dialog.model_info, dialog.status):
        if label.text():
            assert label.height() >= label.heightForWidth(label.width()), label.text()


def _choose(dialog: Any, layer: QgsRasterLayer, model: dict, out: Path) -> None:
    dialog.layer.setLayer(layer)
    if model["path"]:
        dialog.model_choice.setCurrentIndex(1)
        dialog.model_file.setFilePath(model["path"])
    dialog.output.setFilePath(str(out / "classes.tif"))
    dialog.polygons_on.setChecked(True)
    dialog.polygons.setFilePath(str(out / "classes.gpkg"))


def test_segment_task_adds_styled_georeferenced_layers(plugin: Any, qgis_iface: Any, sample_tile: Path,
                                                       model: dict, worker_env: str, tmp_path: Path,
                                                       wait_until: Any, checked_events: list[dict]) -> None:
    scene = QgsRasterLayer(str(sample_tile), "scene", "gdal")
    QgsProject.instance().addMapLayer(scene)
    dialog = plugin.show_dialog()
    _choose(dialog, scene, model, tmp_path)
    wait_until(lambda: dialog.fit is not None and dialog.model_info.text(), timeout=180)
    assert dialog.fit["fits"]["ok"], dialog.fit
    assert dialog.segment_button.isEnabled() and "fits the model" in dialog.fit_info.text()
    assert all(c["name"] in dialog.model_info.text() for c in model["classes"]), dialog.model_info.text()
    assert "blue, green, red, nir" in dialog.model_info.text()
    _assert_text_not_cut(dialog)

    assert not dialog.natural_button.isHidden()  # blue, green, red, nir: QGIS drew blue as red
    dialog.natural_button.click()
    rgb = scene.renderer()
    assert isinstance(rgb, QgsMultiBandColorRenderer)
    assert (rgb.redBand(), rgb.greenBand(), rgb.blueBand()) == (3, 2, 1)
    qgis_iface.messageBar().clearWidgets()
    task = dialog.segment()
    assert task is not None
    wait_until(lambda: task not in GeosegTask.alive, timeout=300)
    assert task.error is None
    polygons, raster = task.layers
    n_classes = len(model["classes"])

    assert isinstance(raster, QgsRasterLayer) and raster.isValid()
    assert isinstance(raster.renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in raster.renderer().classes()] == [c["name"] for c in model["classes"]]
    assert raster.crs() == scene.crs() and raster.extent() == scene.extent()
    assert (raster.width(), raster.height()) == (scene.width(), scene.height())

    assert isinstance(polygons, QgsVectorLayer) and polygons.isValid() and polygons.featureCount() > 0
    assert isinstance(polygons.renderer(), QgsCategorizedSymbolRenderer)
    assert len(polygons.renderer().categories()) == n_classes
    assert polygons.crs() == scene.crs()
    assert {"class_id", "class_name", "area_m2"} <= set(polygons.fields().names())
    assert set(QgsProject.instance().mapLayers().values()) >= {raster, polygons}

    assert (raster.name(), polygons.name()) == ("classes (class map)", "classes (polygons)")  # same stem

    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Success)
    assert text.startswith(f"segment {sample_tile.name}: done in ") and len(text) <= HEADLINE_CHARS
    assert text.endswith("added the class map and the polygons")
    assert f"wrote class map {tmp_path / 'classes.tif'}" in details
    assert f"wrote polygons {tmp_path / 'classes.gpkg'}" in details
    assert any(f"{c['name']} " in details for c in model["classes"])  # area per class
    assert [e["task"] for e in checked_events if e["event"] == "done"] == ["predict", "vectorize"]

    png = render_result(scene, raster, polygons, tmp_path / "qgis_result.png")
    DOCS_PNG.parent.mkdir(exist_ok=True)
    shutil.copyfile(png, DOCS_PNG)


def test_cancel_mid_run_leaves_no_outputs(plugin: Any, qgis_iface: Any, sample_tile: Path, model: dict,
                                          worker_env: str, tmp_path: Path, wait_until: Any) -> None:
    scene = QgsRasterLayer(str(sample_tile), "scene", "gdal")
    QgsProject.instance().addMapLayer(scene)
    out = tmp_path / "out"
    out.mkdir()
    dialog = plugin.show_dialog()
    _choose(dialog, scene, model, out)
    dialog.tile.setValue(64)
    dialog.overlap.setValue(8)
    task = dialog.make_task()
    progress: list[float] = []

    def cancel_on_first_progress(percent: float) -> None:  # runs on the task's thread, mid-run
        progress.append(percent)
        task.cancel()

    task.progressChanged.connect(cancel_on_first_progress, Qt.DirectConnection)
    qgis_iface.messageBar().clearWidgets()
    QgsApplication.taskManager().addTask(task)
    wait_until(lambda: task not in GeosegTask.alive, timeout=300)
    assert progress and 0 < progress[0] < 100
    assert task.layers == [] and task.error is None
    assert list(out.iterdir()) == []
    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Info)
    assert text == f"segment {sample_tile.name}: canceled, no outputs were kept" and details is None
    assert task.description() == f"geoseg: segment {sample_tile.name}"  # the task manager's line


def test_headline_fits_the_message_bar() -> None:
    from geoseg_qgis.messages import headline

    assert headline("short") == "short"
    long = "geoseg is not installed for /home/user/a/very/long/path/to/bin/python: install it there " * 3
    cut = headline(long)
    assert len(cut) <= HEADLINE_CHARS and cut.endswith("…") and long.startswith(cut[:-1])
    assert headline("first line\nsecond line") == "first line"


def test_failed_run_shows_a_headline_and_the_whole_message(qgis_iface: Any, tmp_path: Path,
                                                           wait_until: Any) -> None:
    """The bar shows about one line: a long error is cut to a headline, all of it behind Details…."""
    from geoseg_qgis.worker import Step, WorkerRun

    crash = [sys.executable, "-c", "import sys; sys.stderr.write('No module named geoseg\\n'); sys.exit(1)"]
    worker = WorkerRun([Step(crash, [str(tmp_path / "c.tif")])], tmp_path / "run.log")
    task = GeosegTask("segment scene.tif", worker, ClassMapOutputs(str(tmp_path / "c.tif")), qgis_iface.messageBar())
    qgis_iface.messageBar().clearWidgets()
    QgsApplication.taskManager().addTask(task)
    wait_until(lambda: task not in GeosegTask.alive, timeout=60)
    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Critical)
    assert text.startswith("segment scene.tif failed: geoseg is not installed for ")
    assert details == task.error and "worker log: " in details and len(details) > HEADLINE_CHARS
    item = qgis_iface.messageBar().items()[-1]
    assert item.widget().text() == "Details…" and len(item.text()) < len(details)


LONG = "<span style='color:#b00020'>✖ the scene has 3 bands, the model expects 4 (blue, green, red, nir)</span>"


def test_dialog_grows_with_its_text(plugin: Any, worker_env: str) -> None:
    """Wrapped labels (classes, bands, red messages) were cut off until the user resized the dialog.

    The dialog grows up to the screen's height; the headless screen is only 800x600, so the texts here are
    sized to fit in it.
    """
    dialog = plugin.show_dialog()
    narrow = dialog.minimumSizeHint().width()
    dialog.resize(narrow + 250, dialog.minimumSizeHint().height())
    dialog.stop_queries()  # no answer from geoseg may replace the texts below
    short = dialog.height()
    classes = " ".join(f"■&nbsp;{name}" for name in ("water", "developed", "barren", "forest", "shrubland",
                                                     "herbaceous", "cultivated", "wetlands"))
    dialog.model_info.setText(f"<b>Classes:</b> {classes}<br><b>Bands:</b> blue, green, red, nir")
    # A message one line long at this width and two lines long at the narrowest.
    margin = dialog.width() - dialog.status.width()
    message = "✖"
    while dialog.status.fontMetrics().horizontalAdvance(message) < dialog.width() - margin - 125:
        message += " the scene does not fit"
    dialog.status.setText(message)
    _assert_text_not_cut(dialog)
    assert dialog.height() > short
    tall = dialog.height()
    dialog.resize(dialog.width(), 100)  # the user cannot shrink it below its text
    _assert_text_not_cut(dialog)
    assert dialog.height() == tall
    dialog.resize(narrow, tall)  # narrower: more lines, taller
    _assert_text_not_cut(dialog)
    assert tall < dialog.height() < dialog.screen().availableGeometry().height()


def test_segment_is_disabled_while_geoseg_cannot_run(plugin: Any, sample_tile: Path, worker_env: str,
                                                     wait_until: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interpreter without geoseg: the check fails, so Segment must not start a run that fails at once."""
    scene = QgsRasterLayer(str(sample_tile), "scene", "gdal")
    QgsProject.instance().addMapLayer(scene)
    dialog = plugin.show_dialog()
    dialog.layer.setLayer(scene)
    dialog.python.setFilePath(sys.executable)  # QGIS's own Python: no geoseg there
    assert not dialog.segment_button.isEnabled()  # not before geoseg has answered either
    wait_until(lambda: dialog.failed)
    assert "geoseg is not installed for" in dialog.status.text()
    assert not dialog.segment_button.isEnabled() and dialog.segment_button.toolTip()
    query = dialog.check()
    wait_until(lambda: query.error is not None)
    assert not dialog.segment_button.isEnabled()
    dialog.python.setFilePath(worker_env)  # the geoseg environment: the layer is checked again
    wait_until(lambda: dialog.fit is not None)
    assert dialog.segment_button.isEnabled()


def test_interpreter_field_shows_geoseg_python_from_the_environment(plugin: Any, worker_env: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    dialog = plugin.show_dialog()
    line = dialog.python.lineEdit()
    assert dialog.python.filePath() == "" and worker_env in line.placeholderText()
    assert "GEOSEG_PYTHON" in line.placeholderText()
    monkeypatch.delenv("GEOSEG_PYTHON")
    dialog.python.setFilePath("/opt/env/bin/python")
    dialog.python.setFilePath("")
    assert "GEOSEG_PYTHON" not in line.placeholderText()


def test_new_environment_sets_the_interpreter(plugin: Any, qgis_iface: Any, tmp_path: Path, wait_until: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The dialog makes a venv in a new folder and points 'geoseg Python' at it (pip left out: no network)."""
    from geoseg_qgis import settings
    from geoseg_qgis.task import EnvironmentTask
    from geoseg_qgis.worker import venv_python

    settings.set_configured_python("")
    monkeypatch.delenv("GEOSEG_PYTHON", raising=False)
    folder = tmp_path / "geoseg-env"
    commands = [[sys.executable, "-m", "venv", "--without-pip", str(folder)]]
    dialog = plugin.show_dialog()
    qgis_iface.messageBar().clearWidgets()
    task = dialog.create_environment(str(folder), commands)
    assert task is not None and "Making a new environment" in dialog.status.text()
    wait_until(lambda: task not in EnvironmentTask.alive, timeout=120)
    assert task.error is None
    assert dialog.python.filePath() == venv_python(folder) == settings.configured_python()
    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Success)
    assert text == f"new environment ready: geoseg runs with {venv_python(folder)}" and "-m venv" in details
    assert dialog.create_environment(str(folder)) is None  # never into a folder that holds anything
    assert "already exists and is not empty" in dialog.status.text()


# ------------------------------------------------------------------------------------------ detect objects
@pytest.mark.slow
def test_detect_objects_adds_styled_objects_and_their_ids(plugin: Any, qgis_iface: Any, objects_scene: Path,
                                                          worker_env: str, tmp_path: Path, wait_until: Any,
                                                          checked_events: list[dict]) -> None:
    scene = QgsRasterLayer(str(objects_scene), "houses", "gdal")
    QgsProject.instance().addMapLayer(scene)
    plugin.detect_action.trigger()  # Raster > geoseg > Detect objects…
    dialog = plugin.dialog
    dialog.layer.setLayer(scene)
    assert dialog.model_choice.currentIndex() == METHOD and "bright-objects" in dialog.model_info.text()
    assert (dialog.windowTitle(), dialog.segment_button.text()) == ("geoseg: detect objects", "Detect objects")
    assert all(w.isHidden() for w in (dialog.output, dialog.polygons, dialog.polygons_on, dialog.min_area))
    assert not any(w.isHidden() for w in (dialog.objects, dialog.ids, dialog.ids_on, dialog.score))
    assert not dialog.device.isEnabled()  # no model to put on a GPU
    assert dialog.objects.filePath() == str(objects_scene.with_name("houses_objects.gpkg"))
    dialog.objects.setFilePath(str(tmp_path / "houses.gpkg"))
    dialog.ids_on.setChecked(True)
    dialog.ids.setFilePath(str(tmp_path / "houses.tif"))
    wait_until(dialog.segment_button.isEnabled, timeout=180)
    _assert_text_not_cut(dialog)

    qgis_iface.messageBar().clearWidgets()
    task = dialog.segment()
    assert task is not None and task.description() == "geoseg: detect objects in houses.tif"
    wait_until(lambda: task not in GeosegTask.alive, timeout=300)
    assert task.error is None
    [done] = [e for e in checked_events if e["event"] == "done"]  # checked against events.schema.json
    assert done["task"] == "detect" and done["n_objects"] == len(RECTS)
    objects, ids = task.layers
    assert (objects.name(), ids.name()) == ("houses (objects)", "houses (object ids)")  # same stem
    assert set(QgsProject.instance().mapLayers().values()) >= {objects, ids}

    assert isinstance(objects, QgsVectorLayer) and objects.featureCount() == len(RECTS)
    assert objects.crs() == scene.crs()
    assert {"instance_id", "class_id", "class_name", "score", "area_m2"} <= set(objects.fields().names())
    areas = sorted(f["area_m2"] for f in objects.getFeatures())
    assert areas == pytest.approx(sorted(h * w * 0.25 for _, _, h, w in RECTS), rel=0.05)
    renderer = objects.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "class_name"
    [category] = renderer.categories()
    assert (category.value(), category.label()) == ("object", "object")
    outline = category.symbol().symbolLayer(0)
    assert outline.strokeColor().name() == done["color_per_class"]["object"]  # geoseg's colour for the class
    assert outline.fillColor().alpha() < 128 and outline.strokeWidth() >= 0.5  # imagery shows through

    assert isinstance(ids, QgsRasterLayer) and isinstance(ids.renderer(), QgsSingleBandPseudoColorRenderer)
    assert ids.crs() == scene.crs() and ids.extent() == scene.extent()
    values = gdal.Open(str(tmp_path / "houses.tif")).ReadAsArray()
    assert sorted(set(values.ravel().tolist())) == list(range(len(RECTS) + 1))  # 0: no object

    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Success)
    assert text.startswith("detect objects in houses.tif: done in ") and len(text) <= HEADLINE_CHARS
    assert text.endswith(f"found {len(RECTS)} objects, added them and their ids")
    assert f"{len(RECTS)} objects: object {len(RECTS)}" in details
    assert f"wrote objects {tmp_path / 'houses.gpkg'}" in details
    assert f"wrote object ids {tmp_path / 'houses.tif'}" in details

    plugin.action.trigger()  # Raster > geoseg > Segment raster…: back to the class-map options
    assert dialog.model_choice.currentIndex() == DEFAULT_MODEL
    assert dialog.objects.isHidden() and not dialog.output.isHidden()


@pytest.mark.slow
def test_detect_refusal_shows_geoseg_line(plugin: Any, qgis_iface: Any, worker_env: str, tmp_path: Path,
                                          wait_until: Any) -> None:
    """A scene without a CRS has no pixel size in metres: geoseg refuses it in one line, and nothing is left."""
    scene_path = write_objects_scene(tmp_path / "no_crs.tif", crs=False)
    scene = QgsRasterLayer(str(scene_path), "no crs", "gdal")
    QgsProject.instance().addMapLayer(scene)
    dialog = plugin.show_dialog(objects=True)
    dialog.layer.setLayer(scene)
    out = tmp_path / "out"
    out.mkdir()
    dialog.objects.setFilePath(str(out / "objects.gpkg"))
    wait_until(dialog.segment_button.isEnabled, timeout=180)
    qgis_iface.messageBar().clearWidgets()
    task = dialog.segment()
    wait_until(lambda: task not in GeosegTask.alive, timeout=300)
    [(text, details)] = pushed(qgis_iface.messageBar(), Qgis.Critical)
    refusal = (f"{scene_path}: bright-objects needs the scene's pixel size in metres (a projected CRS) to size "
               "objects; reproject the scene")
    assert details == task.error and details.startswith(refusal + " (worker log: ")
    assert "\n" not in details and "Traceback" not in details
    assert text.startswith("detect objects in no_crs.tif failed: ")
    assert task.layers == [] and list(out.iterdir()) == []


@pytest.mark.slow
def test_an_instance_model_switches_the_dialog_to_objects(plugin: Any, objects_scene: Path, instance_model: str,
                                                          worker_env: str, wait_until: Any) -> None:
    """What a run makes comes from the bundle: ``task: instance`` in its metadata means objects."""
    scene = QgsRasterLayer(str(objects_scene), "houses", "gdal")
    QgsProject.instance().addMapLayer(scene)
    dialog = plugin.show_dialog(objects=False)
    dialog.layer.setLayer(scene)
    dialog.model_choice.setCurrentIndex(1)
    dialog.model_file.setFilePath(instance_model)
    wait_until(lambda: dialog.finds_objects is not None and dialog.fit is not None, timeout=180)
    assert dialog.finds_objects and dialog.fit["fits"]["ok"], dialog.fit
    assert dialog.segment_button.isEnabled() and dialog.segment_button.text() == "Detect objects"
    assert dialog.output.isHidden() and not dialog.objects.isHidden() and dialog.device.isEnabled()
    assert dialog.model_info.text().startswith("<b>Objects:</b>") and "building" in dialog.model_info.text()
    dialog.score.setValue(0.3)
    [step] = dialog.make_task().worker.steps
    assert step.command[5:9] == ["-o", dialog.objects.filePath(), "--model", instance_model]
    assert "--method" not in step.command and step.command[9:11] == ["--score-threshold", "0.3"]
    plugin.show_dialog(objects=True)  # Detect objects… keeps a model that finds objects
    assert dialog.model_choice.currentIndex() == 1
    plugin.show_dialog(objects=False)  # Segment raster… does not: the default model labels pixels
    assert dialog.model_choice.currentIndex() == DEFAULT_MODEL
    assert dialog.finds_objects is False and not dialog.output.isHidden() and dialog.objects.isHidden()
    assert dialog.segment_button.text() == "Segment"
