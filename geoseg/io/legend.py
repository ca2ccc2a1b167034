"""Class schemes: ids, names and colours of a land-cover legend, and how they travel inside GeoTIFFs.

A class map written by geoseg carries its legend twice: as a GDAL colour table (every GIS shows it) and as
the dataset tag ``GEOSEG_CLASSES`` (JSON, exact names and the nodata id) so that ``vectorize`` and the QGIS
plugin can name classes without the model bundle.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

CLASSES_TAG = "GEOSEG_CLASSES"
NODATA_TAG = "GEOSEG_NODATA_CLASS"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


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
