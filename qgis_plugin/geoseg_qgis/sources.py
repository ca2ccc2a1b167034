# SPDX-License-Identifier: GPL-2.0-or-later
"""Raster layers as files the worker can open: geoseg reads local files, not QGIS providers."""
from __future__ import annotations

import os

from qgis.core import QgsProject, QgsRasterFileWriter, QgsRasterLayer, QgsRasterPipe


def local_path(layer: QgsRasterLayer) -> str | None:
    """The local file behind a GDAL layer, or ``None`` (web service, memory, sub-dataset, missing file)."""
    if layer.providerType() != "gdal":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


def save_as_geotiff(layer: QgsRasterLayer, path: str) -> str:
    """Write the layer's raw data (all bands, its CRS and extent) to a GeoTIFF that geoseg can read."""
    provider = layer.dataProvider()
    pipe = QgsRasterPipe()
    if not pipe.set(provider.clone()):
        raise ValueError(f"{layer.name()}: cannot read its data provider to save it")
    writer = QgsRasterFileWriter(path)
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    error = writer.writeRaster(pipe, provider.xSize(), provider.ySize(), provider.extent(), provider.crs(),
                               QgsProject.instance().transformContext())
    if error != QgsRasterFileWriter.NoError:
        raise ValueError(f"{layer.name()}: saving it as {path} failed (QgsRasterFileWriter error {error})")
    return path
