# SPDX-License-Identifier: GPL-2.0-or-later
"""Legends for geoseg outputs: a paletted class raster with class names, categorised polygons, objects.

The legend travels inside the class map (geoseg/classes.py): the ``GEOSEG_CLASSES`` tag has exact names
and colours, the GDAL colour table is the fallback for class maps written by other tools. Both are read
here with QGIS's own GDAL, never through geoseg. Objects (polygons with ``class_name``) carry no legend;
their run's ``done`` event does (``color_per_class``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import (QgsCategorizedSymbolRenderer, QgsColorRampShader, QgsContrastEnhancement,
                       QgsFillSymbol, QgsGradientColorRamp, QgsGradientStop, QgsMultiBandColorRenderer,
                       QgsPalettedRasterRenderer, QgsRasterLayer, QgsRasterMinMaxOrigin, QgsRasterShader,
                       QgsRendererCategory, QgsSingleBandPseudoColorRenderer, QgsSymbolLayerUtils,
                       QgsVectorLayer)
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


#: Objects: the class colour at this opacity inside (the imagery shows through), fully opaque outlines.
OBJECT_FILL_ALPHA = 64
OBJECT_OUTLINE_MM = "0.6"
#: A class the legend does not name (an older geoseg sends none): drawn, never hidden.
UNNAMED_COLOUR = "#ff00ff"


def style_objects(layer: QgsVectorLayer, colors: Mapping[str, str]) -> None:
    """Objects categorised by ``class_name``: thick outlines in the class colour over a faint fill of it,
    so that buildings stay visible over imagery and neighbours stay apart.

    ``colors`` (class name -> #rrggbb, the run's ``color_per_class``) gives the categories in legend order;
    a class found in the layer but missing there still gets a category.
    """
    found = layer.uniqueValues(layer.fields().indexOf("class_name"))
    names = list(colors) + sorted(str(v) for v in found if v not in colors)
    categories = []
    for name in names:
        colour = QColor(colors.get(name, UNNAMED_COLOUR))
        fill = QColor(colour)
        fill.setAlpha(OBJECT_FILL_ALPHA)
        symbol = QgsFillSymbol.createSimple({"color": QgsSymbolLayerUtils.encodeColor(fill),
                                             "outline_color": QgsSymbolLayerUtils.encodeColor(colour),
                                             "outline_width": OBJECT_OUTLINE_MM, "outline_width_unit": "MM"})
        categories.append(QgsRendererCategory(name, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer("class_name", categories))
    layer.triggerRepaint()


def style_object_ids(layer: QgsRasterLayer, n_objects: int) -> None:
    """The object-id raster as a colour ramp over ids 1..``n_objects`` (0, no object, is its nodata:
    transparent). One legend entry per object would not scale to a city's buildings; identify reads the id.
    """
    stops = [QgsGradientStop(0.25, QColor("#fdae61")), QgsGradientStop(0.5, QColor("#ffffbf")),
             QgsGradientStop(0.75, QColor("#abdda4"))]
    ramp = QgsGradientColorRamp(QColor("#d7191c"), QColor("#2b83ba"), False, stops)
    top = float(max(n_objects, 2))
    function = QgsColorRampShader(1.0, top, ramp, QgsColorRampShader.Interpolated)
    function.classifyColorRamp(5)
    shader = QgsRasterShader(1.0, top)
    shader.setRasterShaderFunction(function)
    layer.setRenderer(QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader))
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
