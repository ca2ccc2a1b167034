"""The files written beside a class map, and the switches for them.

``landcover.tif`` gets ``landcover.tif.aux.xml`` (category names and attribute table, from the writer),
``landcover.qml`` (QGIS loads it with the raster) and ``landcover.stac.json`` (its STAC Item). The two
last ones are on by default and each can be switched off (``qml=False``, ``stac=False``; ``--no-qml``,
``--no-stac``). They are refused before the run when they exist (without ``overwrite``), like the map.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio

from geoseg.io.legend import ClassScheme
from geoseg.io.outputs import check_writable
from geoseg.io.qml import qml_path, write_qml
from geoseg.io.stac import Producer, stac_path, write_stac_item


@dataclass(frozen=True)
class Sidecars:
    """Which sidecars a product gets: its QGIS style (``qml``) and its STAC Item (``stac``)."""

    qml: bool = True
    stac: bool = True

    def paths(self, class_map: str | os.PathLike) -> list[Path]:
        return ([qml_path(class_map)] if self.qml else []) + ([stac_path(class_map)] if self.stac else [])

    def check(self, class_map: str | os.PathLike, overwrite: bool, inputs: Sequence[str | os.PathLike] = ()) -> None:
        """Refuse, before hours of work, sidecars that exist (without ``overwrite``) or cannot be written."""
        for path in self.paths(class_map):
            check_writable(path, overwrite, inputs)

    def write(self, class_map: str | os.PathLike, scene: str | os.PathLike, producer: Producer, *,
              probabilities: str | os.PathLike | None = None, overwrite: bool = False) -> list[Path]:
        """Write the sidecars of the finished ``class_map`` (the style first: the Item lists it)."""
        written: list[Path] = []
        if self.qml:
            with rasterio.open(class_map) as dataset:
                scheme = ClassScheme.from_dataset(dataset)
            if scheme is not None:
                written.append(write_qml(scheme, class_map, overwrite=overwrite))
        if self.stac:
            written.append(write_stac_item(class_map, scene, producer, probabilities=probabilities,
                                           style=written[0] if written else None, overwrite=overwrite))
        return written
