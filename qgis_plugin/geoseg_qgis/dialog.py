# SPDX-License-Identifier: GPL-2.0-or-later
"""The "segment this layer" dialog: layer, model, outputs, options, Check and Segment.

It only gathers choices and shows what geoseg says about them (``geoseg info``); the work runs in a
``GeosegTask``. Messages appear in the dialog's status line rather than modal boxes, so that a user can
read them next to the field they concern.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                                 QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox,
                                 QVBoxLayout, QWidget)

from . import settings
from .info_query import InfoQuery
from .sources import local_path, save_as_geotiff
from .task import GeosegTask
from .worker import PredictOptions, WorkerError, WorkerRun, disk_warning, segment_steps

DEVICES = ("auto", "cpu", "cuda")


class SegmentDialog(QDialog):
    """Choose a raster layer and a model, see whether they fit, and start a segmentation task."""

    def __init__(self, iface: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.setWindowTitle("geoseg: segment raster")
        self.queries: dict[str, InfoQuery] = {}
        self.fit: dict[str, Any] | None = None
        self.task: GeosegTask | None = None
        self._build()
        self.python.setFilePath(settings.configured_python())
        self.python.fileChanged.connect(self._python_changed)
        self.layer.layerChanged.connect(self._layer_changed)
        self.model_choice.currentIndexChanged.connect(self.refresh)
        self.model_file.fileChanged.connect(self.refresh)
        self.polygons_on.toggled.connect(self.polygons.setEnabled)
        self._layer_changed()

    def _build(self) -> None:
        self.python = QgsFileWidget()
        self.python.setDialogTitle("Python interpreter of the geoseg environment")
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check)
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.save_copy_button = QPushButton("Save as GeoTIFF…")
        self.save_copy_button.clicked.connect(self._ask_save_copy)
        self.model_choice = QComboBox()
        self.model_choice.addItems(["Default model", "Model file"])
        self.model_file = QgsFileWidget()
        self.model_file.setFilter("geoseg model (*.safetensors)")
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif)")
        self.polygons_on = QCheckBox("Polygons")
        self.polygons_on.setChecked(True)
        self.polygons = QgsFileWidget()
        self.polygons.setStorageMode(QgsFileWidget.SaveFile)
        self.polygons.setFilter("GeoPackage (*.gpkg)")
        self.min_area = QDoubleSpinBox()
        self.min_area.setRange(0, 1e12)
        self.min_area.setSuffix(" m²")
        self.min_area.setToolTip("Polygons smaller than this are merged into their neighbours (sieve)")
        self.tile = _spin(0, 16384, "model default")
        self.overlap = _spin(-1, 8192, "model default")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.segment_button = buttons.addButton("Segment", QDialogButtonBox.AcceptRole)
        buttons.accepted.connect(self.segment)
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("geoseg Python", _row(self.python, self.check_button))
        form.addRow("Raster layer", _row(self.layer, self.save_copy_button))
        form.addRow("Model", _row(self.model_choice, self.model_file))
        form.addRow("", self.model_info)
        form.addRow("Class map", self.output)
        form.addRow(self.polygons_on, self.polygons)
        form.addRow("Min. polygon area", self.min_area)
        form.addRow("Tile size (px)", self.tile)
        form.addRow("Overlap (px)", self.overlap)
        form.addRow("Device", self.device)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.status)
        box.addWidget(buttons)

    # -- what the user chose ---------------------------------------------------------------------------
    def model_path(self) -> str | None:
        return self.model_file.filePath() or None if self.model_choice.currentIndex() == 1 else None

    def scene_path(self) -> str | None:
        layer = self.layer.currentLayer()
        return local_path(layer) if isinstance(layer, QgsRasterLayer) else None

    def options(self) -> PredictOptions:
        return PredictOptions(
            scene=self.scene_path() or "", output=self.output.filePath(), model=self.model_path(),
            tile=self.tile.value() or None, overlap=None if self.overlap.value() < 0 else self.overlap.value(),
            device=self.device.currentText(),
            polygons=self.polygons.filePath() if self.polygons_on.isChecked() else None,
            min_area=self.min_area.value() or None)

    # -- reacting to changes ---------------------------------------------------------------------------
    def _python_changed(self, path: str) -> None:
        settings.set_configured_python(path)
        self.refresh()

    def _layer_changed(self, *_: Any) -> None:
        scene = self.scene_path()
        layer = self.layer.currentLayer()
        self.save_copy_button.setVisible(layer is not None and scene is None)
        if scene:
            stem = Path(scene).with_suffix("")
            self.output.setFilePath(f"{stem}_classes.tif")
            self.polygons.setFilePath(f"{stem}_polygons.gpkg")
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Ask geoseg (in the background) about the model and whether the layer fits it."""
        self.fit = None
        self.model_info.setText("")
        layer = self.layer.currentLayer()
        if layer is not None and self.scene_path() is None:
            self.status.setText(f"{layer.name()} is not a local file geoseg can read: save it as a GeoTIFF "
                                "first (button above)")
            return
        try:
            python = settings.interpreter()
        except WorkerError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("")
        model = self.model_path()
        if self.model_choice.currentIndex() == 1 and not model:
            return
        self._query("model", python, model, None, self._show_model)
        if self.scene_path():
            self._query("fit", python, self.scene_path(), model, self._show_fit)

    def _query(self, key: str, python: str, path: str | None, model: str | None, on_ok: Any) -> None:
        if key in self.queries:
            self.queries.pop(key).cancel()
        query = InfoQuery(python, path, model, self)
        query.succeeded.connect(on_ok)
        query.failed.connect(self.status.setText)
        self.queries[key] = query
        query.start()

    def stop_queries(self) -> None:
        """Kill pending ``geoseg info`` processes (the plugin is unloading)."""
        while self.queries:
            self.queries.popitem()[1].cancel()

    def _show_model(self, data: dict[str, Any]) -> None:
        bundle = data.get("default_model") if "devices" in data else data  # installation, or a bundle
        if not bundle:
            self.model_info.setText("<b>No default model</b> in this geoseg: choose a model file.")
            return
        if bundle.get("error"):  # the installation's default model could not be read
            self.model_info.setText(f"<b>Default model unusable:</b> {html.escape(bundle['error'])}")
            return
        classes = " ".join(f"<span style='color:{html.escape(c.get('color', '#808080'))}'>■</span>"
                           f"&nbsp;{html.escape(str(c.get('name')))}" for c in bundle.get("classes", []))
        bands = ", ".join(str(b.get("name")) for b in bundle.get("bands", []))
        self.model_info.setText(f"<b>Classes:</b> {classes}<br><b>Bands:</b> {html.escape(bands)}")

    def _show_fit(self, data: dict[str, Any]) -> None:
        self.fit = data
        fits = data.get("fits")
        if fits is None:  # no model to check against (no default model installed)
            self.status.setText("")
            return
        lines = [f"<span style='color:#b00020'>✖ {html.escape(p)}</span>" for p in fits.get("problems", [])]
        lines += [f"<span style='color:#b26a00'>⚠ {html.escape(w)}</span>" for w in fits.get("warnings", [])]
        folder = os.path.dirname(self.output.filePath()) or "."
        space = disk_warning(folder, int(data.get("width", 0)), int(data.get("height", 0)))
        if space:
            lines.append(f"<span style='color:#b26a00'>⚠ {html.escape(space)}</span>")
        self.status.setText("<br>".join(lines) or "✔ the layer fits the model")

    # -- buttons ---------------------------------------------------------------------------------------
    def check(self) -> InfoQuery | None:
        """Show geoseg's version, devices and default model (the environment works end to end)."""
        try:
            python = settings.interpreter()
        except WorkerError as exc:
            self.status.setText(str(exc))
            return None
        self.status.setText(f"Checking {python}…")
        self._query("check", python, None, None, self._show_check)
        return self.queries["check"]

    def _show_check(self, data: dict[str, Any]) -> None:
        devices = ", ".join(str(d.get("name")) for d in data.get("devices", []))
        self.status.setText(f"✔ geoseg {data.get('geoseg_version')} (torch {data.get('torch_version')}) · "
                            f"devices: {devices} · default model: {_model_name(data.get('default_model'))}")
        self._show_model(data)

    def _ask_save_copy(self) -> None:
        layer = self.layer.currentLayer()
        path, _ = QFileDialog.getSaveFileName(self, f"geoseg reads local files only: save {layer.name()} as",
                                              _save_name(layer.name()), "GeoTIFF (*.tif)")
        if path:
            self.save_copy(path)

    def save_copy(self, path: str) -> QgsRasterLayer:
        """Save the current (non-local) layer as a GeoTIFF, add it and select it."""
        layer = self.layer.currentLayer()
        save_as_geotiff(layer, path)
        copy = QgsRasterLayer(path, f"{layer.name()} (GeoTIFF)", "gdal")
        QgsProject.instance().addMapLayer(copy)
        self.layer.setLayer(copy)
        return copy

    def segment(self) -> GeosegTask | None:
        """Validate the choices and start the task; problems are shown in the status line."""
        try:
            task = self.make_task()
        except WorkerError as exc:
            self.status.setText(str(exc))
            return None
        QgsApplication.taskManager().addTask(task)
        self.task = task
        self.accept()
        return task

    def make_task(self) -> GeosegTask:
        python = settings.interpreter()
        opts = self.options()
        if not opts.scene:
            raise WorkerError("choose a raster layer stored in a local file (or save it as a GeoTIFF first)")
        if not opts.output:
            raise WorkerError("choose where to write the class map")
        problems = ((self.fit or {}).get("fits") or {}).get("problems") or []
        if problems:
            raise WorkerError("the layer does not fit the model: " + "; ".join(problems))
        worker = WorkerRun(segment_steps(python, opts), settings.new_log_path("segment"))
        return GeosegTask(f"segment {Path(opts.scene).name}", worker, opts.output, opts.polygons,
                          self.iface.messageBar())


def _model_name(model: dict[str, Any] | None) -> str:
    """The default model as ``geoseg info --json`` describes it: its bundle's name, or why it is unusable."""
    if not model:
        return "none"
    return f"unusable ({model['error']})" if model.get("error") else str(model.get("name"))


def _spin(low: int, high: int, special: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSpecialValueText(special)
    spin.setValue(low)
    return spin


def _row(*widgets: QWidget) -> QWidget:
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        box.addWidget(w)
    return row


def _save_name(name: str) -> str:
    folder = QgsProject.instance().homePath() or str(Path.home())
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return str(Path(folder) / f"{safe}.tif")
