# SPDX-License-Identifier: GPL-2.0-or-later
"""Registers the geoseg algorithms with QGIS Processing."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import SegmentRasterAlgorithm, VectorizeClassMapAlgorithm

ICON = str(Path(__file__).resolve().parent.parent / "icon.svg")


class GeosegProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "geoseg"

    def name(self) -> str:
        return "geoseg"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentRasterAlgorithm())
        self.addAlgorithm(VectorizeClassMapAlgorithm())
