# SPDX-License-Identifier: GPL-2.0-or-later
"""Put a finished run's outputs into the project, styled, and say what was made."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

from .styling import read_legend, style_class_raster, style_object_ids, style_objects, style_polygons


@dataclass(frozen=True)
class ClassMapOutputs:
    """What a segment run writes: a class map, and polygons when asked for."""

    classmap: str | None
    polygons: str | None = None

    def add(self, project: QgsProject, dones: Sequence[Mapping[str, Any]]) -> list[Any]:
        return add_outputs(project, self.classmap, self.polygons)

    def described(self, dones: Sequence[Mapping[str, Any]]) -> str:
        """What the message bar says was done, after the time."""
        return "added " + " and ".join(name for name, path in (("the class map", self.classmap),
                                                               ("the polygons", self.polygons)) if path)


@dataclass(frozen=True)
class ObjectOutputs:
    """What a detect run writes: objects as polygons, and their ids as a raster when asked for."""

    objects: str
    ids: str | None = None

    def add(self, project: QgsProject, dones: Sequence[Mapping[str, Any]]) -> list[Any]:
        return add_objects(project, self.objects, self.ids, dones[-1])

    def described(self, dones: Sequence[Mapping[str, Any]]) -> str:
        """What the message bar says was done, after the time."""
        return f"found {dones[-1].get('n_objects', 0)} objects, added them" + (" and their ids" if self.ids else "")


def add_outputs(project: QgsProject, classmap: str | None, polygons: str | None,
                legend_from: str | None = None) -> list[Any]:
    """Add the class raster and/or polygons, styled with the class map's legend; invalid layers raise."""
    legend = read_legend(legend_from or classmap) if (legend_from or classmap) else []
    raster_name, vector_name = layer_names(classmap, polygons)
    layers: list[Any] = []
    if classmap:
        raster = _open(QgsRasterLayer(classmap, raster_name, "gdal"), "the class map")
        style_class_raster(raster, legend)
        layers.append(raster)
    if polygons:
        vector = _open(QgsVectorLayer(polygons, vector_name, "ogr"), "the polygons")
        style_polygons(vector, legend)
        layers.insert(0, vector)
    _add_above(project, layers)
    return layers


def add_objects(project: QgsProject, objects: str, ids: str | None, done: Mapping[str, Any]) -> list[Any]:
    """Add the objects categorised by class with the run's class colours (``done``: geoseg's detect event),
    and the id raster beneath them; invalid layers raise."""
    raster_name, vector_name = layer_names(ids, objects, ("object ids", "objects"))
    vector = _open(QgsVectorLayer(objects, vector_name, "ogr"), "the objects")
    style_objects(vector, done.get("color_per_class") or {})
    layers: list[Any] = [vector]
    if ids:
        raster = _open(QgsRasterLayer(ids, raster_name, "gdal"), "the object ids")
        style_object_ids(raster, int(done.get("n_objects") or 0))
        layers.append(raster)
    _add_above(project, layers)
    return layers


def _open(layer: Any, what: str) -> Any:
    if not layer.isValid():
        raise ValueError(f"{layer.source()}: QGIS cannot open {what} geoseg wrote")
    return layer


def _add_above(project: QgsProject, layers: list[Any]) -> None:
    """Add ``layers`` so that the first ends up on top (polygons above rasters)."""
    for layer in reversed(layers):
        project.addMapLayer(layer)


def layer_names(raster: str | None, vector: str | None,
                kinds: tuple[str, str] = ("class map", "polygons")) -> tuple[str, str]:
    """Layer names for a raster and a vector output: their file names, told apart by ``kinds`` when those
    are the same.

    ``scene_classes.tif`` and ``scene_classes.gpkg`` would both be "scene_classes" in the layer panel.
    """
    raster_stem = Path(raster).stem if raster else ""
    vector_stem = Path(vector).stem if vector else ""
    if raster_stem and raster_stem == vector_stem:
        return f"{raster_stem} ({kinds[0]})", f"{vector_stem} ({kinds[1]})"
    return raster_stem, vector_stem


#: What each task's ``output`` is, as the message bar names it.
_WROTE = {"predict": "class map", "vectorize": "polygons", "detect": "objects"}


def summary_lines(dones: list[Mapping[str, Any]], seconds: float) -> list[str]:
    """What a run did, a line each: time, objects per class, area per class (largest first), each file.

    ``dones`` are geoseg's done events (events.schema.json): predict, vectorize and detect name their file
    ``output`` and their areas ``area_m2_per_class`` (class name -> m²); detect counts ``objects_per_class``
    and names its id raster ``instances_raster``.
    """
    lines = [f"done in {seconds:.1f} s"]
    lines += [objects_line(done) for done in dones if "objects_per_class" in done]
    areas = next((d["area_m2_per_class"] for d in dones if d.get("area_m2_per_class")), {})
    if areas:
        largest = sorted(areas.items(), key=lambda item: -item[1])
        lines.append("area per class: " + ", ".join(f"{name} {_area(m2)}" for name, m2 in largest))
    for done in dones:
        if done.get("output"):
            lines.append(f"wrote {_WROTE.get(done.get('task'), 'output')} {done['output']}")
        if done.get("instances_raster"):
            lines.append(f"wrote object ids {done['instances_raster']}")
    return lines


def objects_line(done: Mapping[str, Any]) -> str:
    """``12 objects: building 9, pond 3`` from a detect run's ``done`` event (most frequent class first)."""
    counts = sorted(done["objects_per_class"].items(), key=lambda item: -item[1])
    return f"{done['n_objects']} objects" + (": " if counts else "") + ", ".join(f"{name} {n}" for name, n in counts)


def _area(m2: float) -> str:
    """km² from 1 km², ha from 1 ha, m² below (a few buildings add up to less than a hectare)."""
    if m2 >= 1e6:
        return f"{m2 / 1e6:.2f} km²"
    return f"{m2 / 1e4:.2f} ha" if m2 >= 1e4 else f"{m2:.0f} m²"
