# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs inside a real QGIS desktop for ``desktop_check.py`` (``qgis --code desktop_probe.py``).

It never clicks anything: the check drives QGIS with real X input events (xdotool). The probe only
reports, a few times a second, where the widgets to click are on the screen and what QGIS shows
(layers, message bar, message log, the Processing dialog's log) as JSON in ``$GEOSEG_CHECK_DIR/state.json``.
Two steps a user would take by hand are done on request (a ``cmd-<name>`` file in that folder): adding the
scene layer at start, and opening the Processing dialog of *Segment raster* with that scene as input.
"""
from __future__ import annotations

import json
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMultiBandColorRenderer, QgsProject, QgsRasterLayer
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QPoint, QTimer
from qgis.PyQt.QtWidgets import QApplication, QLabel, QPushButton, QTextEdit, QToolButton, QWidget
from qgis.utils import iface, plugins

CHECK_DIR = Path(os.environ["GEOSEG_CHECK_DIR"])
SCENE = os.environ["GEOSEG_CHECK_SCENE"]
PLUGIN = "geoseg_qgis"

# Python warnings reach QGIS's log through its warnings hook; make every ResourceWarning visible there.
warnings.simplefilter("always", ResourceWarning)


class Probe:
    """Collects what QGIS shows and writes it as JSON; runs the few requested set-up steps."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.bar: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.processing: Any = None
        self.seen_items: set[int] = set()
        QgsApplication.messageLog().messageReceived.connect(self._logged)
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(250)

    def _logged(self, message: str, tag: str, level: Qgis.MessageLevel) -> None:
        self.log.append({"tag": tag, "level": int(level), "message": message})

    def _bar_items(self) -> None:
        """Record each new message bar item (polled: ``widgetAdded`` hands Python a bare QWidget)."""
        for item in iface.messageBar().items():
            key = sip.unwrapinstance(item)
            if key not in self.seen_items:
                self.seen_items.add(key)
                self.bar.append({"level": int(item.level()), "title": item.title(), "text": item.text(),
                                 "geoseg_text": item.property("geoseg_text"),
                                 "details": item.property("geoseg_details")})

    # -- requested steps ---------------------------------------------------------------------------------
    def cmd_add_scene(self) -> None:
        iface.addRasterLayer(SCENE, Path(SCENE).stem)

    def cmd_open_processing(self) -> None:
        import processing

        scene = next(layer for layer in QgsProject.instance().mapLayers().values()
                     if layer.source() == SCENE)
        self.processing = processing.createAlgorithmDialog(
            "geoseg:segment", {"INPUT": scene.id(), "TILE": 32, "OVERLAP": 16,  # many tiles: time to cancel
                               "OUTPUT": str(CHECK_DIR / "processing_classes.tif")})
        self.processing.show()

    # -- the state ---------------------------------------------------------------------------------------
    def tick(self) -> None:
        try:
            for command in sorted(CHECK_DIR.glob("cmd-*")):
                command.unlink()
                getattr(self, command.name.replace("-", "_"))()
            self._bar_items()
            self.write()
        except Exception:  # noqa: BLE001 - reported to the check, which fails on it
            self.errors.append(traceback.format_exc())

    def write(self) -> None:
        state = {"ready": iface.mainWindow().isVisible(), "errors": self.errors, "log": self.log,
                 "bar": self.bar, "layers": _layers(), "tasks": QgsApplication.taskManager().countActiveTasks(),
                 "toolbar_button": None, "menu": None, "dialog": None, "processing": None}
        state["bar_current"] = _bar_current()
        plugin = plugins.get(PLUGIN)
        if plugin is not None and plugin.action is not None:
            buttons = [b for b in iface.mainWindow().findChildren(QToolButton)
                       if b.defaultAction() is plugin.action and b.isVisible()]
            state["toolbar_button"] = _rect(buttons[0]) if buttons else None
            state["menu"] = _menu(plugin.action)
        if plugin is not None and plugin.dialog is not None and plugin.dialog.isVisible():
            state["dialog"] = _dialog(plugin.dialog)
        if self.processing is not None and self.processing.isVisible():
            log = self.processing.findChild(QTextEdit, "txtLog")
            state["processing"] = {"rect": _rect(self.processing), "run": _rect(self.processing.runButton()),
                                   "cancel": _rect(self.processing.cancelButton()),
                                   "log": log.toPlainText() if log is not None else ""}
        tmp = CHECK_DIR / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
        tmp.replace(CHECK_DIR / "state.json")


def _rect(widget: QWidget) -> dict[str, Any]:
    """Where ``widget`` is on the screen (global pixels), and whether it can be clicked."""
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return {"x": top_left.x(), "y": top_left.y(), "w": widget.width(), "h": widget.height(),
            "enabled": widget.isEnabled(), "visible": widget.isVisible()}


def _bar_current() -> dict[str, Any] | None:
    """The message bar's shown item, its Details… button and the bar's close button (its rightmost)."""
    bar = iface.messageBar()
    item = bar.currentItem()
    close = sorted((b for b in bar.findChildren(QToolButton) if b.isVisible()),
                   key=lambda b: b.mapToGlobal(QPoint(0, 0)).x())
    if item is None or not close:
        return None
    details = item.widget()
    viewers = [w for w in QApplication.topLevelWidgets()
               if w.isVisible() and w.metaObject().className() == "QgsMessageViewer"]
    viewer = None
    if viewers:
        buttons = [b for b in viewers[0].findChildren(QPushButton) if b.isVisible()]
        viewer = {"rect": _rect(viewers[0]), "close": _rect(buttons[-1]) if buttons else None,
                  "text": viewers[0].findChild(QTextEdit).toPlainText() if viewers[0].findChild(QTextEdit) else ""}
    return {"text": item.text(), "geoseg_text": item.property("geoseg_text"), "close": _rect(close[-1]),
            "details": _rect(details) if details is not None else None, "viewer": viewer}


def _menu(action: Any) -> dict[str, Any]:
    """Where to click for Raster > geoseg > Segment raster…: the menu title, then each open menu's item."""
    bar = iface.mainWindow().menuBar()
    raster = iface.rasterMenu()
    title = bar.actionGeometry(raster.menuAction())
    top_left = bar.mapToGlobal(title.topLeft())
    items = {"raster": {"x": top_left.x(), "y": top_left.y(), "w": title.width(), "h": title.height(),
                        "enabled": True, "visible": bar.isVisible()},
             "geoseg": None, "segment": None}
    submenu = next((a for a in raster.actions() if a.menu() is not None and a.text().replace("&", "") == "geoseg"),
                   None)
    if raster.isVisible() and submenu is not None:
        items["geoseg"] = _item(raster, submenu)
        if submenu.menu().isVisible():
            items["segment"] = _item(submenu.menu(), action)
    return items


def _item(menu: Any, action: Any) -> dict[str, Any]:
    geometry = menu.actionGeometry(action)
    top_left = menu.mapToGlobal(geometry.topLeft())
    return {"x": top_left.x(), "y": top_left.y(), "w": geometry.width(), "h": geometry.height(),
            "enabled": action.isEnabled(), "visible": True}


def _dialog(dialog: Any) -> dict[str, Any]:
    cut = [label.text() for label in dialog.findChildren(QLabel)
           if label.isVisible() and label.wordWrap() and label.text()
           and label.height() < label.heightForWidth(label.width())]
    return {"rect": _rect(dialog), "natural": _rect(dialog.natural_button),
            "segment": _rect(dialog.segment_button), "check": _rect(dialog.check_button),
            "python_placeholder": dialog.python.lineEdit().placeholderText(),
            "fit_info": dialog.fit_info.text(), "model_info": dialog.model_info.text(),
            "status": dialog.status.text(), "cut_labels": cut}


def _layers() -> list[dict[str, Any]]:
    layers = []
    for layer in QgsProject.instance().layerTreeRoot().layerOrder():
        entry = {"name": layer.name(), "source": layer.source(), "valid": layer.isValid()}
        renderer = layer.renderer() if hasattr(layer, "renderer") else None
        entry["renderer"] = type(renderer).__name__ if renderer is not None else None
        if isinstance(layer, QgsRasterLayer) and isinstance(renderer, QgsMultiBandColorRenderer):
            entry["rgb"] = [renderer.redBand(), renderer.greenBand(), renderer.blueBand()]
        layers.append(entry)
    return layers


PROBE = Probe()
PROBE.cmd_add_scene()
