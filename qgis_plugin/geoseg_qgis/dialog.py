# SPDX-License-Identifier: GPL-2.0-or-later
"""The "segment this layer" / "detect objects" dialog: layer, model, outputs, options, Check and run.

It only gathers choices and shows what geoseg says about them (``geoseg info``); the work runs in a
``GeosegTask``. What a run makes comes from the model: a semantic bundle a class map (and polygons), an
instance bundle (``task: instance`` in its metadata) or the bright-objects method objects as polygons (and
an id raster); the dialog shows the options of the one it will make. Messages appear in the dialog's status
line rather than modal boxes, so that a user can read them next to the field they concern.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QResizeEvent
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                                 QFileDialog, QFormLayout, QHBoxLayout, QLabel, QMessageBox, QPushButton,
                                 QSpinBox, QVBoxLayout, QWidget)

from . import environment, settings
from .bands import band_names, natural_colour
from .info_query import InfoQuery
from .results import ClassMapOutputs, ObjectOutputs
from .sources import local_path, save_as_geotiff
from .styling import style_natural_colour
from .task import EnvironmentTask, GeosegTask
from .worker import (ENV_VAR, OBJECT_METHOD, DetectOptions, PredictOptions, Step, WorkerError, WorkerRun,
                     detect_steps, disk_warning, segment_steps)

DEVICES = ("auto", "cpu", "cuda")
WAITING = "{} is enabled once geoseg has checked that the layer fits the model"
#: The model choices, by index.
DEFAULT_MODEL, MODEL_FILE, METHOD = range(3)
METHOD_INFO = (f"<b>{OBJECT_METHOD}</b> (no model): objects brighter than their surroundings, such as roofs, "
               "found by a threshold on local contrast; a baseline to compare trained models with")


class WrappedLabel(QLabel):
    """A word-wrapped, selectable rich-text label that says when its text changed (QLabel does not)."""

    changed = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.changed.emit()


class SegmentDialog(QDialog):
    """Choose a raster layer and a model, see whether they fit, and start a segmentation task."""

    def __init__(self, iface: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.setWindowTitle("geoseg: segment raster")
        self.queries: dict[str, InfoQuery] = {}
        self.fit: dict[str, Any] | None = None
        self.model_bands: list[str] = []
        self.natural_bands: tuple[int, int, int] | None = None
        self.failed = False  # a geoseg query failed since the last change: Segment would fail the same way
        #: Whether the run finds objects (instance model, bright-objects); None until geoseg said what the
        #: chosen model file is.
        self.finds_objects: bool | None = None
        self.task: GeosegTask | None = None
        self._fitted_width = 0
        self._build()
        self.python.setFilePath(settings.configured_python())
        self._show_interpreter_source()
        self.python.fileChanged.connect(self._python_changed)
        self.layer.layerChanged.connect(self._layer_changed)
        self.model_choice.currentIndexChanged.connect(self.refresh)
        self.model_file.fileChanged.connect(self.refresh)
        self.polygons_on.toggled.connect(self.polygons.setEnabled)
        self.ids_on.toggled.connect(self.ids.setEnabled)
        self._layer_changed()

    def _build(self) -> None:
        self.python = QgsFileWidget()
        self.python.setDialogTitle("Python interpreter of the geoseg environment")
        self.python.setMinimumWidth(320)  # room for a path (or the GEOSEG_PYTHON placeholder) beside 2 buttons
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check)
        self.new_env_button = QPushButton("New environment…")
        self.new_env_button.setToolTip("Make a Python environment for geoseg and install geoseg into it")
        self.new_env_button.clicked.connect(self._ask_new_environment)
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.save_copy_button = QPushButton("Save as GeoTIFF…")
        self.save_copy_button.clicked.connect(self._ask_save_copy)
        self.natural_button = QPushButton("Natural colour")
        self.natural_button.clicked.connect(self.show_natural_colour)
        self.natural_button.setVisible(False)
        self.fit_info = WrappedLabel()
        self.model_choice = QComboBox()
        self.model_choice.addItems(["Default model", "Model file", f"{OBJECT_METHOD} (no model)"])
        self.model_choice.setToolTip("An instance model (task: instance) or bright-objects finds objects as "
                                     "polygons; other models make a class map")
        self.model_file = QgsFileWidget()
        self.model_file.setFilter("geoseg model (*.safetensors)")
        self.model_info = WrappedLabel()
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
        self.objects = QgsFileWidget()
        self.objects.setStorageMode(QgsFileWidget.SaveFile)
        self.objects.setFilter("GeoPackage (*.gpkg)")
        self.ids_on = QCheckBox("Object ids")
        self.ids_on.setToolTip("Also write a raster of object ids (0 where there is no object)")
        self.ids = QgsFileWidget()
        self.ids.setStorageMode(QgsFileWidget.SaveFile)
        self.ids.setFilter("GeoTIFF (*.tif)")
        self.ids.setEnabled(False)
        self.score = QDoubleSpinBox()
        self.score.setRange(-0.05, 1.0)
        self.score.setSingleStep(0.05)
        self.score.setSpecialValueText("model default")
        self.score.setValue(-0.05)
        self.score.setToolTip("Objects scoring below this (0-1) are left out")
        self.tile = _spin(0, 16384, "model default")
        self.overlap = _spin(-1, 8192, "model default")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.status = WrappedLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.segment_button = buttons.addButton("Segment", QDialogButtonBox.AcceptRole)
        self.segment_button.setEnabled(False)
        self.segment_button.setToolTip(WAITING.format("Segment"))
        buttons.accepted.connect(self.segment)
        buttons.rejected.connect(self.reject)

        form = self.form = QFormLayout()
        form.addRow("geoseg Python", _row(self.python, self.check_button, self.new_env_button))
        form.addRow("Raster layer", _row(self.layer, self.save_copy_button, self.natural_button))
        form.addRow("", self.fit_info)
        form.addRow("Model", _row(self.model_choice, self.model_file))
        form.addRow("", self.model_info)
        form.addRow("Class map", self.output)
        form.addRow(self.polygons_on, self.polygons)
        form.addRow("Min. polygon area", self.min_area)
        form.addRow("Objects", self.objects)
        form.addRow(self.ids_on, self.ids)
        form.addRow("Min. score", self.score)
        for field in (self.objects, self.ids, self.score):  # until a model that finds objects is chosen
            _show_row(form, field, False)
        form.addRow("Tile size (px)", self.tile)
        form.addRow("Overlap (px)", self.overlap)
        form.addRow("Device", self.device)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.status)
        box.addWidget(buttons)
        for label in (self.fit_info, self.model_info, self.status):
            label.changed.connect(self.fit_to_text)

    # -- size --------------------------------------------------------------------------------------------
    def fit_to_text(self) -> None:
        """Grow to the height the wrapped labels need at the current width, and keep at least that.

        A word-wrapped label knows its height only for a given width (height-for-width); Qt does not grow
        a dialog when such a label gets more lines, so class names, the bands line and messages were cut
        off until the user resized the dialog by hand.
        """
        layout = self.layout()
        layout.activate()
        width = self.width()
        needed = (layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
                  else layout.totalSizeHint().height())
        screen = self.screen().availableGeometry().height() if self.screen() is not None else needed
        needed = min(needed, screen)
        self._fitted_width = width
        self.setMinimumHeight(needed)
        if self.height() < needed:
            self.resize(width, needed)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        """A narrower dialog wraps into more lines: fit again whenever the width changes."""
        super().resizeEvent(event)
        if event.size().width() != self._fitted_width:
            self.fit_to_text()

    # -- what the user chose ---------------------------------------------------------------------------
    def model_path(self) -> str | None:
        return self.model_file.filePath() or None if self.model_choice.currentIndex() == MODEL_FILE else None

    def uses_method(self) -> bool:
        """bright-objects: no model to ask geoseg about or to fit the layer to."""
        return self.model_choice.currentIndex() == METHOD

    def scene_path(self) -> str | None:
        layer = self.layer.currentLayer()
        return local_path(layer) if isinstance(layer, QgsRasterLayer) else None

    def options(self) -> PredictOptions:
        return PredictOptions(
            output=self.output.filePath(),
            polygons=self.polygons.filePath() if self.polygons_on.isChecked() else None,
            min_area=self.min_area.value() or None, **self._run_fields())

    def detect_options(self) -> DetectOptions:
        return DetectOptions(
            output=self.objects.filePath(), score_threshold=None if self.score.value() < 0 else self.score.value(),
            instances_raster=self.ids.filePath() if self.ids_on.isChecked() else None, **self._run_fields())

    def _run_fields(self) -> dict[str, Any]:
        """Scene, model and engine choices, as ``RunOptions`` fields (``None``: the model's)."""
        return {"scene": self.scene_path() or "", "model": self.model_path(), "tile": self.tile.value() or None,
                "overlap": None if self.overlap.value() < 0 else self.overlap.value(),
                "device": self.device.currentText()}

    def choose_task(self, objects: bool) -> None:
        """Make the dialog do what the menu entry said: detect objects, or segment.

        Detect objects picks bright-objects unless the chosen model finds objects (or may: a model file
        geoseg has not described yet); Segment raster leaves a model that finds objects for the default model.
        """
        choice = self.model_choice.currentIndex()
        if objects and not (self.finds_objects or (self.finds_objects is None and choice == MODEL_FILE)):
            self.model_choice.setCurrentIndex(METHOD)
        elif not objects and (self.finds_objects or choice == METHOD):
            self.model_choice.setCurrentIndex(DEFAULT_MODEL)

    # -- reacting to changes ---------------------------------------------------------------------------
    def _python_changed(self, path: str) -> None:
        settings.set_configured_python(path)
        self._show_interpreter_source()
        self.refresh()

    def _show_interpreter_source(self) -> None:
        """An empty field shows the interpreter ``GEOSEG_PYTHON`` names, greyed (a placeholder)."""
        env = os.environ.get(ENV_VAR, "").strip()
        line = self.python.lineEdit()
        if env:
            line.setPlaceholderText(f"{ENV_VAR}: {env}")  # the source first: a long path is cut at the end
            line.setToolTip(f"Empty: geoseg runs with {env}, from {ENV_VAR}. A path here wins over it.")
        else:
            line.setPlaceholderText("python of your geoseg environment, e.g. ~/geoseg-env/bin/python")
            line.setToolTip("")

    def _layer_changed(self, *_: Any) -> None:
        scene = self.scene_path()
        layer = self.layer.currentLayer()
        self.save_copy_button.setVisible(layer is not None and scene is None)
        if scene:
            stem = Path(scene).with_suffix("")
            self.output.setFilePath(f"{stem}_classes.tif")
            self.polygons.setFilePath(f"{stem}_polygons.gpkg")
            self.objects.setFilePath(f"{stem}_objects.gpkg")
            self.ids.setFilePath(f"{stem}_object_ids.tif")
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Ask geoseg (in the background) about the model and whether the layer fits it.

        Segment stays disabled until the answer says the layer fits: a failed check would fail the run too.
        """
        self.fit = None
        self.failed = False
        self.model_bands = []
        # bright-objects finds objects, the default model labels pixels; a model file's bundle says which.
        self.finds_objects = {METHOD: True, DEFAULT_MODEL: False}.get(self.model_choice.currentIndex())
        self._show_task()
        self._update_segment()
        self._update_natural_colour()
        self.model_info.setText(METHOD_INFO if self.uses_method() else "")
        self.fit_info.setText("")
        self.model_file.setEnabled(self.model_choice.currentIndex() == MODEL_FILE)
        self.device.setEnabled(not self.uses_method())
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
        if self.model_choice.currentIndex() == MODEL_FILE and not model:
            self.fit_info.setText("Choose a model file.")
            return
        if not self.uses_method():
            self._query("model", python, model, None, self._show_model)
        self._ask_fit(python)

    def _ask_fit(self, python: str) -> None:
        if self.scene_path():
            self.fit_info.setText(f"Checking whether {html.escape(self.layer.currentLayer().name())} "
                                  "fits the model…")
            self._query("fit", python, self.scene_path(), self.model_path(), self._show_fit)

    def _query(self, key: str, python: str, path: str | None, model: str | None, on_ok: Any) -> None:
        if key in self.queries:
            self.queries.pop(key).cancel()
        query = InfoQuery(python, path, model, self)
        query.succeeded.connect(on_ok)
        query.failed.connect(self._query_failed)
        self.queries[key] = query
        query.start()

    def stop_queries(self) -> None:
        """Kill pending ``geoseg info`` processes (the plugin is unloading)."""
        while self.queries:
            self.queries.popitem()[1].cancel()

    def _query_failed(self, message: str) -> None:
        self.failed = True
        self.status.setText(message)
        if self.fit is None:
            self.fit_info.setText("")
        self._update_segment()

    def _update_segment(self) -> None:
        """Run only when geoseg said what the model makes and that the layer fits it (bright-objects: that
        it can read the layer), and nothing failed since."""
        fits = (self.fit or {}).get("fits") or {}
        fitting = self.fit is not None if self.uses_method() else bool(fits.get("ok"))
        ready = fitting and self.finds_objects is not None and not self.failed
        self.segment_button.setEnabled(ready)
        self.segment_button.setToolTip("" if ready else WAITING.format(self.segment_button.text()))

    def _show_task(self) -> None:
        """The options of what the run makes: objects (and their ids), or a class map (and polygons).

        While geoseg has not yet said what a newly chosen model is, the options stay as they were.
        """
        if self.finds_objects is None:
            return
        objects = self.finds_objects
        for field in (self.output, self.polygons, self.min_area):
            _show_row(self.form, field, not objects)
        for field in (self.objects, self.ids, self.score):
            _show_row(self.form, field, objects)
        self.setWindowTitle("geoseg: detect objects" if objects else "geoseg: segment raster")
        self.segment_button.setText("Detect objects" if objects else "Segment")

    def _update_natural_colour(self) -> None:
        """Offer natural colour when the band names say which bands are red, green and blue."""
        bands = natural_colour(band_names(self.fit, self.model_bands)) if self.fit else None
        self.natural_button.setVisible(bands is not None)
        if bands is not None:
            self.natural_button.setToolTip("Draw the layer with band {} as red, {} as green and {} as blue "
                                           "(from the band names)".format(*bands))
        self.natural_bands = bands

    def show_natural_colour(self) -> None:
        """Draw the chosen layer in natural colour (QGIS's default shows bands 1-2-3 as RGB)."""
        layer = self.layer.currentLayer()
        if isinstance(layer, QgsRasterLayer) and self.natural_bands:
            style_natural_colour(layer, self.natural_bands)
            if self.iface is not None:
                self.iface.layerTreeView().refreshLayerSymbology(layer.id())

    def _show_model(self, data: dict[str, Any]) -> None:
        bundle = data.get("default_model") if "devices" in data else data  # installation, or a bundle
        if not bundle:
            self.model_info.setText("<b>No default model</b> in this geoseg: choose a model file.")
            return
        if bundle.get("error"):  # the installation's default model could not be read
            self.model_info.setText(f"<b>Default model unusable:</b> {html.escape(bundle['error'])}")
            return
        # The CLI finds objects with an instance bundle passed as a file (the default model labels pixels).
        self.finds_objects = (bundle.get("task") == "instance"
                              and self.model_choice.currentIndex() == MODEL_FILE)
        classes = " ".join(f"<span style='color:{html.escape(c.get('color', '#808080'))}'>■</span>"
                           f"&nbsp;{html.escape(str(c.get('name')))}" for c in bundle.get("classes", []))
        self.model_bands = [str(b.get("name")) for b in bundle.get("bands", [])]
        bands = ", ".join(self.model_bands)
        kind = "Objects" if self.finds_objects else "Classes"
        self.model_info.setText(f"<b>{kind}:</b> {classes}<br><b>Bands:</b> {html.escape(bands)}")
        self._show_task()
        self._update_segment()
        self._update_natural_colour()

    def _show_fit(self, data: dict[str, Any]) -> None:
        self.fit = data
        self._update_segment()
        self._update_natural_colour()
        fits = data.get("fits")
        if self.uses_method():  # nothing to fit; the answer says geoseg reads the layer
            self.fit_info.setText(f"✔ {OBJECT_METHOD} runs on the layer's own bands")
            return
        if fits is None:  # no model to check against (no default model installed)
            self.fit_info.setText("")
            return
        lines = [f"<span style='color:#b00020'>✖ {html.escape(p)}</span>" for p in fits.get("problems", [])]
        lines += [f"<span style='color:#b26a00'>⚠ {html.escape(w)}</span>" for w in fits.get("warnings", [])]
        folder = os.path.dirname(self.output.filePath()) or "."
        space = disk_warning(folder, int(data.get("width", 0)), int(data.get("height", 0)))
        if space and not self.finds_objects:  # the warning sizes a class map
            lines.append(f"<span style='color:#b26a00'>⚠ {html.escape(space)}</span>")
        self.fit_info.setText("<br>".join(lines) or "✔ the layer fits the model")

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
        if self.model_choice.currentIndex() == DEFAULT_MODEL:
            self._show_model(data)
        if self.failed or self.fit is None:  # geoseg works now (e.g. installed since): ask about the layer
            self.failed = False
            self._ask_fit(self.queries["check"].python)

    def _ask_new_environment(self) -> None:
        """Ask for a new folder, show what will run, and make the environment when the user agrees."""
        folder, _ = QFileDialog.getSaveFileName(self, "Folder for a new geoseg environment",
                                                str(environment.DEFAULT_FOLDER), "",
                                                options=QFileDialog.DontConfirmOverwrite)
        if not folder:
            return
        try:
            path = environment.check_folder(folder)
            commands = environment.install_commands(_base_python(), path)
        except WorkerError as exc:
            self.status.setText(str(exc))
            return
        answer = QMessageBox.question(
            self, "New geoseg environment",
            f"Make a Python environment in {path} and install geoseg into it from your package index?\n\n"
            + "\n".join(" ".join(c) for c in commands)
            + "\n\nThis downloads geoseg and PyTorch (about 1-3 GB) and takes minutes. It runs in the "
            "background and can be canceled; nothing outside the new folder is changed.")
        if answer == QMessageBox.Yes:
            self.create_environment(path, commands)

    def create_environment(self, folder: str | Path,
                           commands: list[list[str]] | None = None) -> EnvironmentTask | None:
        """Start the task that makes the environment; when it is ready, the interpreter field points to it."""
        try:
            path = environment.check_folder(folder)
            commands = commands or environment.install_commands(_base_python(), path)
        except WorkerError as exc:
            self.status.setText(str(exc))
            return None
        task = EnvironmentTask(commands, path, settings.new_log_path("environment"), self.iface.messageBar(),
                               self.python.setFilePath)
        QgsApplication.taskManager().addTask(task)
        self.status.setText(f"Making a new environment in {html.escape(str(path))}: progress in QGIS's task "
                            "bar; the interpreter field is set when it is ready.")
        return task

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
        scene = self.scene_path()
        if not scene:
            raise WorkerError("choose a raster layer stored in a local file (or save it as a GeoTIFF first)")
        problems = [] if self.uses_method() else ((self.fit or {}).get("fits") or {}).get("problems") or []
        if problems:
            raise WorkerError("the layer does not fit the model: " + "; ".join(problems))
        steps: list[Step]
        outputs: ClassMapOutputs | ObjectOutputs
        if self.finds_objects:
            found = self.detect_options()
            if not found.output:
                raise WorkerError("choose where to write the objects")
            steps, outputs = detect_steps(python, found), ObjectOutputs(found.output, found.instances_raster)
            what, log = f"detect objects in {Path(scene).name}", "detect"
        else:
            opts = self.options()
            if not opts.output:
                raise WorkerError("choose where to write the class map")
            steps, outputs = segment_steps(python, opts), ClassMapOutputs(opts.output, opts.polygons)
            what, log = f"segment {Path(scene).name}", "segment"
        return GeosegTask(what, WorkerRun(steps, settings.new_log_path(log)), outputs, self.iface.messageBar())


def _base_python() -> str:
    base = environment.base_python()
    if base is None:
        raise WorkerError("no Python 3 found to make the environment with: install Python 3, or make the "
                          "environment in a terminal (see the plugin's README)")
    return base


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


def _show_row(form: QFormLayout, field: QWidget, visible: bool) -> None:
    """Show or hide a form row, its label included (Qt 5 has no QFormLayout.setRowVisible)."""
    field.setVisible(visible)
    label = form.labelForField(field)
    if label is not None:
        label.setVisible(visible)


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
