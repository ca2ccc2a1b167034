"""Class schemes: ids, names and colours of a land-cover legend, and how they travel inside GeoTIFFs.

A class map written by geoseg carries its legend in every form a tool without geoseg reads:

- a GDAL colour table (every GIS paints with it);
- GDAL category names and a raster attribute table (value, class name, colour, pixel count), which
  GeoTIFF can only hold in the GDAL PAM sidecar ``.tif.aux.xml``: gdalinfo, QGIS (labels of the paletted
  renderer), ArcGIS and R's terra read them from there;
- the dataset tag ``GEOSEG_CLASSES`` (JSON, exact names and the nodata id) inside the TIFF, so that
  ``vectorize`` and the QGIS plugin name classes even when the sidecar was not copied along.
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

CLASSES_TAG = "GEOSEG_CLASSES"
NODATA_TAG = "GEOSEG_NODATA_CLASS"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

# GDAL's GDALRATFieldType and GDALRATFieldUsage codes (gdal.h), as written in PAM .aux.xml files.
_INTEGER, _REAL, _STRING = 0, 1, 2
_PIXEL_COUNT, _NAME, _MIN_MAX, _RED, _GREEN, _BLUE, _ALPHA = 1, 2, 5, 6, 7, 8, 9
#: The raster attribute table's columns: (name, GDAL field type, GDAL field usage).
RAT_COLUMNS = (("Value", _INTEGER, _MIN_MAX), ("Count", _REAL, _PIXEL_COUNT), ("Class_Name", _STRING, _NAME),
               ("Red", _INTEGER, _RED), ("Green", _INTEGER, _GREEN), ("Blue", _INTEGER, _BLUE),
               ("Alpha", _INTEGER, _ALPHA))


class ClassInfo(BaseModel):
    """One class of a legend."""

    id: int = Field(ge=0, le=254)
    name: str = Field(min_length=1)
    color: str = "#808080"

    @field_validator("color")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError(f"colour {value!r} is not a #rrggbb hex colour")
        return value.lower()

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class ClassScheme(BaseModel):
    """A legend: the classes a model predicts plus the id written where the input had no data."""

    classes: list[ClassInfo]
    nodata_id: int = Field(default=255, ge=0, le=255)

    @model_validator(mode="after")
    def _unique(self) -> "ClassScheme":
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"class ids must be unique, got {ids}")
        if self.nodata_id in ids:
            raise ValueError(f"nodata id {self.nodata_id} is also a class id")
        if not self.classes:
            raise ValueError("a class scheme needs at least one class")
        return self

    def names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.classes}

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """A GDAL colour table: every class colour, the nodata id transparent."""
        cmap = {c.id: (*c.rgb, 255) for c in self.classes}
        cmap[self.nodata_id] = (0, 0, 0, 0)
        return cmap

    def category_names(self) -> list[str]:
        """GDAL category names: entry ``i`` names pixel value ``i`` (up to the largest class id; others empty).

        The nodata id gets no entry: GDAL's list starts at 0 and cannot skip to 255 without 250 empty names,
        and the band's nodata value already says what it is.
        """
        names = [""] * (max(c.id for c in self.classes) + 1)
        for c in self.classes:
            names[c.id] = c.name
        return names

    def pam_xml(self, pixel_counts: Mapping[int, int]) -> str:
        """A GDAL PAM document for band 1: category names and a thematic raster attribute table.

        Columns follow GDAL's field usages (so QGIS and gdalinfo know what each one is) and ArcGIS's names
        (``Value``, ``Count``): ``Value`` (class id), ``Count`` (pixels of that class in the map; a Real
        column because GDAL's Integer is 32-bit and a class of a big scene can exceed 2**31 pixels),
        ``Class_Name``, and the colour as ``Red``, ``Green``, ``Blue``, ``Alpha`` (0-255). One row per class,
        classes without pixels included (the table is also the legend).
        """
        root = ET.Element("PAMDataset")
        band = ET.SubElement(root, "PAMRasterBand", band="1")
        categories = ET.SubElement(band, "CategoryNames")
        for name in self.category_names():
            ET.SubElement(categories, "Category").text = name
        table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
        for index, (name, kind, usage) in enumerate(RAT_COLUMNS):
            field = ET.SubElement(table, "FieldDefn", index=str(index))
            ET.SubElement(field, "Name").text = name
            ET.SubElement(field, "Type").text = str(kind)
            ET.SubElement(field, "Usage").text = str(usage)
        for index, c in enumerate(sorted(self.classes, key=lambda c: c.id)):
            row = ET.SubElement(table, "Row", index=str(index))
            for value in (c.id, int(pixel_counts.get(c.id, 0)), c.name, *c.rgb, 255):
                ET.SubElement(row, "F").text = str(value)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode") + "\n"

    def to_tags(self) -> dict[str, str]:
        return {CLASSES_TAG: json.dumps([c.model_dump() for c in self.classes]),
                NODATA_TAG: str(self.nodata_id)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> "ClassScheme | None":
        if CLASSES_TAG not in tags:
            return None
        classes = [ClassInfo(**c) for c in json.loads(tags[CLASSES_TAG])]
        return cls(classes=classes, nodata_id=int(tags.get(NODATA_TAG, 255)))

    @classmethod
    def from_dataset(cls, dataset: Any) -> "ClassScheme | None":
        """The legend of an open rasterio dataset: its geoseg tag, else its colour table, else ``None``."""
        scheme = cls.from_tags(dataset.tags())
        if scheme is not None:
            return scheme
        try:
            cmap = dataset.colormap(1)
        except ValueError:
            return None
        nodata = int(dataset.nodata) if dataset.nodata is not None else 255
        used = {k: v for k, v in cmap.items() if k != nodata and v[3] > 0 and v[:3] != (0, 0, 0)}
        if not used:
            return None
        return cls(classes=[ClassInfo(id=k, name=f"class_{k}", color="#%02x%02x%02x" % v[:3])
                            for k, v in sorted(used.items()) if k <= 254], nodata_id=nodata)


def read_pixel_counts(raster: str | os.PathLike) -> dict[int, int] | None:
    """Pixels per value from the attribute table in ``raster``'s PAM sidecar (None without one).

    Reads GDAL's own format (columns found by their usage, not their name), so a table GDAL rewrote or
    another tool wrote is read too.
    """
    pam = Path(f"{os.fspath(raster)}.aux.xml")
    if not pam.is_file():
        return None
    for band in ET.parse(pam).getroot().iter("PAMRasterBand"):
        table = band.find("GDALRasterAttributeTable")
        if band.get("band") != "1" or table is None:
            continue
        usage = {int(f.findtext("Usage", "0")): int(f.get("index", "-1")) for f in table.findall("FieldDefn")}
        if _MIN_MAX not in usage or _PIXEL_COUNT not in usage:
            return None
        rows = [[v.text or "" for v in row.findall("F")] for row in table.findall("Row")]
        return {int(float(r[usage[_MIN_MAX]])): int(float(r[usage[_PIXEL_COUNT]])) for r in rows}
    return None
