# SPDX-License-Identifier: GPL-2.0-or-later
"""Legends for geoseg outputs: a paletted class raster with class names, categorised polygons.

The legend travels inside the class map (geoseg/classes.py): the ``GEOSEG_CLASSES`` tag has exact names
and colours, the GDAL colour table is the fallback for class maps written by other tools. Both are read
here with QGIS's own GDAL, never through geoseg.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import (QgsCategorizedSymbolRenderer, QgsContrastEnhancement, QgsFillSymbol,
                       QgsMultiBandColorRenderer, QgsPalettedRasterRenderer, QgsRasterLayer,
                       QgsRasterMinMaxOrigin, QgsRendererCategory, QgsVectorLayer)
from qgis.PyQt.QtGui import QColor

CLASSES_TAG = "GEOSEG_CLASSES"
NODATA_TAG = "GEOSEG_NODATA_CLASS"


@dataclass(frozen=True)
class LegendClass:
    id: int
    name: str
    color: str


def read_legend(path: str) -> list[LegendClass]:
    """The classes of a class map: from its geoseg tag, else its colour table (nodata and unused left out)."""
    ds = gdal.Open(path)
    if ds is None:
        raise ValueError(f"{path}: GDAL cannot open it")
    meta = ds.GetMetadata() or {}
    if CLASSES_TAG in meta:
        nodata = int(meta.get(NODATA_TAG, 255))
        return [LegendClass(int(c["id"]), str(c["name"]), str(c["color"]))
                for c in json.loads(meta[CLASSES_TAG]) if int(c["id"]) != nodata]
    band = ds.GetRasterBand(1)
    table = band.GetColorTable()
    if table is None:
        return []
    nodata = band.GetNoDataValue()
    legend = []
    for i in range(table.GetCount()):
        r, g, b, a = table.GetColorEntry(i)
        if i != nodata and a > 0 and (r, g, b) != (0, 0, 0):
            legend.append(LegendClass(i, f"class {i}", f"#{r:02x}{g:02x}{b:02x}"))
    return legend


def style_class_raster(layer: QgsRasterLayer, legend: list[LegendClass]) -> None:
    """A paletted renderer: one legend entry per class with its name and colour; nodata stays transparent."""
    classes = [QgsPalettedRasterRenderer.Class(c.id, QColor(c.color), c.name) for c in legend]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


def style_polygons(layer: QgsVectorLayer, legend: list[LegendClass]) -> None:
    """A categorised renderer on ``class_id`` (labels are class names) with the class map's colours."""
    field = "class_id" if layer.fields().indexOf("class_id") >= 0 else "class_name"
    categories = []
    for c in legend:
        symbol = QgsFillSymbol.createSimple({"color": c.color, "outline_color": "#33333380",
                                             "outline_width": "0.1"})
        value = c.id if field == "class_id" else c.name
        categories.append(QgsRendererCategory(value, symbol, c.name))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    layer.triggerRepaint()


def style_natural_colour(layer: QgsRasterLayer, bands: tuple[int, int, int]) -> None:
    """Draw ``bands`` (red, green, blue indexes) as RGB, stretched between the 2 % and 98 % cumulative cuts.

    QGIS's default for a multiband layer is bands 1-2-3, which for blue-green-red-NIR files shows blue as
    red. Raw reflectance or DN values need a stretch; the cumulative cut ignores outliers such as clouds.
    """
    red, green, blue = bands
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.CumulativeCut)
    layer.triggerRepaint()
