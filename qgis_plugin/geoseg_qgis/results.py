# SPDX-License-Identifier: GPL-2.0-or-later
"""Put a finished run's outputs into the project, styled, and say what was made."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

from .styling import read_legend, style_class_raster, style_polygons


def add_outputs(project: QgsProject, classmap: str | None, polygons: str | None,
                legend_from: str | None = None) -> list[Any]:
    """Add the class raster and/or polygons, styled with the class map's legend; invalid layers raise."""
    legend = read_legend(legend_from or classmap) if (legend_from or classmap) else []
    raster_name, vector_name = layer_names(classmap, polygons)
    layers: list[Any] = []
    if classmap:
        raster = QgsRasterLayer(classmap, raster_name, "gdal")
        if not raster.isValid():
            raise ValueError(f"{classmap}: QGIS cannot open the class map geoseg wrote")
        style_class_raster(raster, legend)
        layers.append(raster)
    if polygons:
        vector = QgsVectorLayer(polygons, vector_name, "ogr")
        if not vector.isValid():
            raise ValueError(f"{polygons}: QGIS cannot open the polygons geoseg wrote")
        style_polygons(vector, legend)
        layers.insert(0, vector)
    for layer in reversed(layers):  # polygons end up above the raster
        project.addMapLayer(layer)
    return layers


def layer_names(classmap: str | None, polygons: str | None) -> tuple[str, str]:
    """Layer names for the two outputs: their file names, told apart when those are the same.

    ``scene_classes.tif`` and ``scene_classes.gpkg`` would both be "scene_classes" in the layer panel.
    """
    raster = Path(classmap).stem if classmap else ""
    vector = Path(polygons).stem if polygons else ""
    if raster and raster == vector:
        return f"{raster} (class map)", f"{vector} (polygons)"
    return raster, vector


#: What each task's ``output`` is, as the message bar names it.
_WROTE = {"predict": "class map", "vectorize": "polygons"}


def summary_lines(dones: list[Mapping[str, Any]], seconds: float) -> list[str]:
    """What a run did, a line each: time, area per class (largest first), each file the run wrote.

    ``dones`` are geoseg's done events (events.schema.json): predict and vectorize both name their file
    ``output`` and their areas ``area_m2_per_class`` (class name -> m²).
    """
    lines = [f"done in {seconds:.1f} s"]
    areas = next((d["area_m2_per_class"] for d in dones if d.get("area_m2_per_class")), {})
    if areas:
        largest = sorted(areas.items(), key=lambda item: -item[1])
        lines.append("area per class: " + ", ".join(f"{name} {_area(m2)}" for name, m2 in largest))
    lines += [f"wrote {_WROTE.get(d.get('task'), 'output')} {d['output']}" for d in dones if d.get("output")]
    return lines


def _area(m2: float) -> str:
    return f"{m2 / 1e6:.2f} km²" if m2 >= 1e6 else f"{m2 / 1e4:.2f} ha"
