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
    layers: list[Any] = []
    if classmap:
        raster = QgsRasterLayer(classmap, Path(classmap).stem, "gdal")
        if not raster.isValid():
            raise ValueError(f"{classmap}: QGIS cannot open the class map geoseg wrote")
        style_class_raster(raster, legend)
        layers.append(raster)
    if polygons:
        vector = QgsVectorLayer(polygons, Path(polygons).stem, "ogr")
        if not vector.isValid():
            raise ValueError(f"{polygons}: QGIS cannot open the polygons geoseg wrote")
        style_polygons(vector, legend)
        layers.insert(0, vector)
    for layer in reversed(layers):  # polygons end up above the raster
        project.addMapLayer(layer)
    return layers


def summary(dones: list[Mapping[str, Any]], seconds: float) -> str:
    """One line for the message bar: time, area per class (largest first), where the files are."""
    parts = [f"done in {seconds:.1f} s"]
    areas = next((_areas(d.get("area_m2_per_class", d.get("area_per_class"))) for d in dones
                  if d.get("area_m2_per_class") or d.get("area_per_class")), [])
    if areas:
        parts.append(", ".join(f"{name} {_area(m2)}" for name, m2 in areas[:8]))
    files = [str(d["output"]) for d in dones if d.get("output")]
    if files:
        parts.append("files: " + ", ".join(files))
    return "; ".join(parts)


def _areas(value: Any) -> list[tuple[str, float]]:
    """``area_per_class`` as (name, m²) pairs, whether geoseg sent a mapping or a list of records."""
    if isinstance(value, Mapping):
        pairs = [(str(k), v.get("area_m2", 0.0) if isinstance(v, Mapping) else v) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = [(str(r.get("name", r.get("class_name", r.get("id")))), r.get("area_m2", 0.0))
                 for r in value if isinstance(r, Mapping)]
    else:
        return []
    return sorted(((n, float(a)) for n, a in pairs), key=lambda p: -p[1])


def _area(m2: float) -> str:
    return f"{m2 / 1e6:.2f} km²" if m2 >= 1e6 else f"{m2 / 1e4:.2f} ha"
