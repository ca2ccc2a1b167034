# SPDX-License-Identifier: GPL-2.0-or-later
"""Registers the geoseg algorithms with QGIS Processing."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import ICON
from .algorithms import DetectObjectsAlgorithm, SegmentRasterAlgorithm, VectorizeClassMapAlgorithm


class GeosegProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "geoseg"

    def name(self) -> str:
        return "geoseg"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS's name
        return ICON

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentRasterAlgorithm())
        self.addAlgorithm(VectorizeClassMapAlgorithm())
        self.addAlgorithm(DetectObjectsAlgorithm())
