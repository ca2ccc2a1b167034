"""QGIS layer styles (.qml) written beside outputs, so a class map opens in QGIS with its legend."""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import atomic_output


def paletted_qml(scheme: ClassScheme) -> str:
    """A QGIS paletted raster renderer: one entry per class, with its name as the legend label."""
    entries = "\n".join(
        f'        <paletteEntry value="{c.id}" color="{c.color}" label={quoteattr(c.name)} alpha="255"/>'
        for c in scheme.classes)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def qml_path(raster: str | os.PathLike) -> Path:
    """``landcover.qml`` for ``landcover.tif``: the name QGIS looks for when it opens the raster."""
    return Path(raster).with_suffix(".qml")


def write_qml(scheme: ClassScheme, raster: str | os.PathLike, overwrite: bool = False) -> Path:
    """``landcover.qml`` beside ``landcover.tif``: QGIS loads it automatically with the raster."""
    path = qml_path(raster)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(paletted_qml(scheme), encoding="utf-8")
    return path
