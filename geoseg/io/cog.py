"""Class maps (and probability rasters) out: window-by-window writes into a staging GeoTIFF, then a COG.

GeoTIFF has no slot for category names or a raster attribute table, so GDAL keeps them in the PAM sidecar
``.tif.aux.xml``. The writer puts them beside the staging file and lets GDAL's COG driver carry them to
the output's own ``.aux.xml`` (the atomic output moves that sidecar with the map): GDAL writes the file
every GDAL-based tool (QGIS, ArcGIS, terra) reads, and rasterio, which has no API for either, need not.
"""
from __future__ import annotations

import warnings
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from geoseg.errors import ParameterError
from geoseg.errors import OutputError
from geoseg.io.legend import ClassScheme


#: The default side of the output GeoTIFF's internal blocks (``output_block``) in px.
DEFAULT_OUTPUT_BLOCK = 512


def check_output_block(output_block: int) -> int:
    """``output_block`` if GeoTIFF can tile by it (it is rounded down to a multiple of 16), else a ParameterError."""
    if output_block < 16:
        raise ParameterError("output_block", output_block, "must be at least 16 (px of a GeoTIFF block side)")
    return output_block


def deprecated_block_size(block_size: int | None, output_block: int, where: str) -> int:
    """The output block when a caller still passes the old ``block_size`` name (it warns)."""
    if block_size is None:
        return output_block
    warnings.warn(f"{where}: block_size is deprecated; it is the output GeoTIFF's block size, now called "
                  "output_block", FutureWarning, stacklevel=3)
    return block_size


GEOTIFF_SUFFIXES = (".tif", ".tiff")


def require_geotiff_name(path: str | os.PathLike) -> None:
    """Class maps and probabilities are GeoTIFFs (COG); a TIFF named ``map.png`` fools every other tool."""
    if Path(path).suffix.lower() not in GEOTIFF_SUFFIXES:
        raise OutputError(f"{path}: class maps and probabilities are written as GeoTIFF (COG); name the file "
                          ".tif or .tiff")


class ClassMapWriter:
    """Writes a uint8 class map (and optionally uint8 probabilities) window by window, then a COG.

    Windows go into a tiled DEFLATE GeoTIFF beside the target; ``finish`` converts it to a Cloud Optimized
    GeoTIFF with mode-resampled overviews and the legend: colour table and class-name tag inside, category
    names and a raster attribute table (with exact pixel counts) in the ``.aux.xml`` beside it.
    ``output_block`` is the side of the file's internal blocks (the COG's at least 128): it shapes the file
    and the GDAL cache its writes need, not what is computed or held in memory. ``cog=False`` writes the
    tiled GeoTIFF at ``tmp_path`` and stops there: a partition of a scene, assembled into a COG later.
    """

    def __init__(self, tmp_path: Path, profile: dict[str, Any], scheme: ClassScheme, output_block: int,
                 count: int = 1, dtype: str = "uint8", band_names: Sequence[str] | None = None,
                 legend: bool = True, nodata: int | None = None, resampling: str | None = None,
                 paintable: bool = False, cog: bool = True):
        self.tmp_path = tmp_path
        self.cog = cog
        self.stage_path = tmp_path.with_name(tmp_path.name + ".stage.tif") if cog else tmp_path
        self.scheme = scheme
        self.legend = legend
        #: Overview resampling: the most common class for class maps, the mean for probabilities, or as given
        #: (NEAREST for object ids, whose mean or mode would invent or merge objects).
        self.resampling = resampling or ("MODE" if legend else "AVERAGE")
        #: Pixels written per class id: the raster attribute table's ``Count`` column. Counting here costs
        #: ~2.5 ms per megapixel on the writer's thread, alongside the model; reading the map back in
        #: ``finish`` would cost ~7 ms per megapixel after it (measured on 100 MP, 2-core CPU).
        self.counts = np.zeros(256, np.int64)
        block = max(16, output_block // 16 * 16)
        self.block = block
        creation = dict(driver="GTiff", width=profile["width"], height=profile["height"], count=count,
                        dtype=dtype, crs=profile.get("crs"), transform=profile["transform"], tiled=True,
                        blockxsize=block, blockysize=block, compress="deflate", predictor=2,
                        nodata=scheme.nodata_id if nodata is None and legend else nodata,
                        BIGTIFF="IF_SAFER")
        # ``paintable`` stages are readable too: :meth:`paint` fills pixels not yet written.
        self.dataset = rasterio.open(self.stage_path, "w+" if paintable else "w", **creation)
        if legend:
            self.dataset.write_colormap(1, scheme.colormap())
            self.dataset.update_tags(**scheme.to_tags())
            self.dataset.set_band_description(1, "class")
        for i, name in enumerate(band_names or [], start=1):
            self.dataset.set_band_description(i, name)

    def write(self, array: np.ndarray, y: int, x: int) -> None:
        """Write one window. Every pixel is written once: the attribute table counts what was written."""
        if array.ndim == 2:
            array = array[None]
        if self.legend:
            self.counts += np.bincount(array[0].ravel(), minlength=256)
        self.dataset.write(array, window=Window(x, y, array.shape[2], array.shape[1]))

    def paint(self, mask: np.ndarray, value: int, y: int, x: int) -> None:
        """Write ``value`` where ``mask`` (h, w) is True and the staged pixel is still 0 (first come keeps it).

        For rasters of objects, whose windows overlap and arrive in any order (needs ``paintable``).
        """
        window = Window(x, y, mask.shape[1], mask.shape[0])
        current = self.dataset.read(1, window=window)
        current[mask & (current == 0)] = value
        self.dataset.write(current, 1, window=window)

    def finish(self) -> None:
        """Close the staging file and copy it into a COG at ``tmp_path`` (mode overviews for classes)."""
        self.dataset.close()
        if not self.cog:
            return
        try:
            if self.legend:
                counts = {value: int(n) for value, n in enumerate(self.counts) if n}
                self.stage_pam.write_text(self.scheme.pam_xml(counts), encoding="utf-8")
            rasterio.shutil.copy(self.stage_path, self.tmp_path, driver="COG", COMPRESS="DEFLATE",
                                 PREDICTOR="2", OVERVIEW_RESAMPLING=self.resampling, BIGTIFF="IF_SAFER",
                                 BLOCKSIZE=str(max(128, self.block)))
        finally:
            self._remove_stage()

    def abort(self) -> None:
        if not self.dataset.closed:
            self.dataset.close()
        self._remove_stage()

    @property
    def stage_pam(self) -> Path:
        return Path(str(self.stage_path) + ".aux.xml")

    def _remove_stage(self) -> None:
        self.stage_path.unlink(missing_ok=True)
        self.stage_pam.unlink(missing_ok=True)

