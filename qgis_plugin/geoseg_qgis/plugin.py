# SPDX-License-Identifier: GPL-2.0-or-later
"""Plugin entry: a Raster-menu/toolbar action for the dialog, and the Processing provider."""
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
        self.dialog: SegmentDialog | None = None

    def initProcessing(self) -> None:
        self.provider = GeosegProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        self.action = QAction(QIcon(ICON), "Segment raster…", self.iface.mainWindow())
        self.action.setToolTip("Segment a raster layer into land-cover classes with geoseg")
        self.action.triggered.connect(self.show_dialog)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def show_dialog(self) -> SegmentDialog:
        """One dialog, reused: it remembers the last choices during the session."""
        if self.dialog is None:
            self.dialog = SegmentDialog(self.iface, self.iface.mainWindow())
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
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.dialog is not None:
            self.dialog.stop_queries()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
