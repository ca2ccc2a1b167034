# SPDX-License-Identifier: GPL-2.0-or-later
"""Plugin entry: Raster-menu actions for the dialog (Segment raster…, Detect objects…; the first also
on the toolbar), and the Processing provider."""
from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import ICON
from .dialog import SegmentDialog
from .processing.provider import GeosegProvider
from .task import GeosegTask

MENU = "geoseg"


class GeosegPlugin:
    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: GeosegProvider | None = None
        self.action: QAction | None = None
        self.detect_action: QAction | None = None
        self.dialog: SegmentDialog | None = None

    def initProcessing(self) -> None:
        self.provider = GeosegProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        self.action = QAction(QIcon(ICON), "Segment raster…", self.iface.mainWindow())
        self.action.setToolTip("Segment a raster layer into land-cover classes with geoseg")
        self.action.triggered.connect(lambda: self.show_dialog(objects=False))
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.detect_action = QAction(QIcon(ICON), "Detect objects…", self.iface.mainWindow())
        self.detect_action.setToolTip("Find objects such as buildings in a raster layer with geoseg: one "
                                      "polygon each, with its class, score and area")
        self.detect_action.triggered.connect(lambda: self.show_dialog(objects=True))
        self.iface.addPluginToRasterMenu(MENU, self.detect_action)

    def show_dialog(self, objects: bool | None = None) -> SegmentDialog:
        """One dialog, reused: it remembers the last choices during the session. ``objects``: the menu
        entry used (Detect objects / Segment raster) sets what the run makes; ``None`` keeps the choices."""
        if self.dialog is None:
            self.dialog = SegmentDialog(self.iface, self.iface.mainWindow())
        if objects is not None:
            self.dialog.choose_task(objects)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def unload(self) -> None:
        """Undo ``initGui``; running geoseg tasks are canceled so that no worker outlives the plugin."""
        for task in list(GeosegTask.alive):
            task.cancel()
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.detect_action is not None:
            self.iface.removePluginRasterMenu(MENU, self.detect_action)
            self.detect_action.deleteLater()
            self.detect_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.dialog is not None:
            self.dialog.stop_queries()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
