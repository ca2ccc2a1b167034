"""Render a result the way QGIS draws it (QgsMapRendererParallelJob), for docs/ and the README."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsContrastEnhancement, QgsMapLayer, QgsMapRendererParallelJob, QgsMapSettings, QgsMultiBandColorRenderer,
                       QgsRasterLayer, QgsRasterMinMaxOrigin)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

WIDTH = 900


def _render(layers: list[QgsMapLayer], reference: QgsMapLayer, height: int) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(reference.crs())
    settings.setExtent(reference.extent())
    settings.setOutputSize(QSize(WIDTH, height))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def render_result(scene: QgsRasterLayer, classes: QgsRasterLayer, polygons: QgsMapLayer, path: Path) -> Path:
    """The scene in natural colour above the styled class map with its polygons, and the legend."""
    scene.setRenderer(QgsMultiBandColorRenderer(scene.dataProvider(), 3, 2, 1))  # red, green, blue
    scene.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    height = round(WIDTH * scene.height() / scene.width())
    legend = classes.renderer().classes()
    image = QImage(WIDTH, 2 * height + 40, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.drawImage(0, 0, _render([scene], scene, height))
    painter.drawImage(0, height, _render([polygons, classes], scene, height))
    painter.setFont(QFont("Sans", 11))
    x = 10
    for entry in legend:
        painter.fillRect(x, 2 * height + 12, 16, 16, entry.color)
        painter.setPen(Qt.black)
        painter.drawText(x + 22, 2 * height + 26, entry.label)
        x += 40 + painter.fontMetrics().horizontalAdvance(entry.label)
    painter.end()
    if not image.save(str(path)):
        raise OSError(f"{path}: could not write the PNG")
    return path
