"""STAC Items beside class maps: ``landcover.tif`` -> ``landcover.stac.json``.

A catalog (STAC Browser, stac-fastapi, pystac, QGIS's STAC data source) learns from the Item what the map
is without opening it: its footprint, its grid (projection extension), its band (raster extension), its
classes with values, names, colours and pixel counts (classification extension), the model and its
metrics (or the classic method) that made it, and a ``derived_from`` link to the input scene.

Everything in the Item is read back from the written class map (grid, legend, the attribute table's pixel
counts), so the Item describes the file as it is, whoever wrote it. Hrefs are relative to the Item, so
the product folder can be moved or published as a whole. Built with pystac.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import rasterio
import rasterio.errors
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Sampling
from rasterio.transform import xy
from rasterio.warp import transform as transform_points

from geoseg import __version__
from geoseg.io.legend import ClassScheme, read_pixel_counts
from geoseg.io.outputs import atomic_output

STAC_SUFFIX = ".stac.json"
#: Points per raster edge when the footprint is reprojected to WGS84 (curved edges stay close).
EDGE_POINTS = 8
_NAME_CHARS = re.compile(r"[^0-9A-Za-z_-]+")


@dataclass(frozen=True)
class Producer:
    """What made a class map: a model (name, architecture, metrics, file) or a classic method."""

    kind: Literal["model", "method"]
    name: str
    description: str = ""
    file: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def properties(self, relative_to: Path) -> dict[str, Any]:
        """The Item's ``geoseg:model`` or ``geoseg:method`` property."""
        described: dict[str, Any] = {"name": self.name}
        if self.description:
            described["description"] = self.description
        if self.file:
            described["file"] = _href(self.file, relative_to)
        if self.metrics or self.kind == "model":
            described["metrics"] = self.metrics             # {}: the model records none
        if self.parameters:
            described["parameters"] = self.parameters
        return {f"geoseg:{self.kind}": described}


def stac_path(class_map: str | os.PathLike) -> Path:
    """Where a class map's Item goes: ``landcover.tif`` -> ``landcover.stac.json``."""
    return Path(class_map).with_suffix(STAC_SUFFIX)


def class_map_item(class_map: str | os.PathLike, scene: str | os.PathLike, producer: Producer, *,
                   probabilities: str | os.PathLike | None = None,
                   style: str | os.PathLike | None = None) -> pystac.Item:
    """The STAC Item of a written class map, its probabilities and QGIS ``style`` when there are some."""
    class_map = Path(class_map)
    folder = class_map.parent
    with rasterio.open(class_map) as dataset:
        scheme = ClassScheme.from_dataset(dataset)
        if scheme is None:
            raise ValueError(f"{class_map}: not a class map (no legend)")
        item = _item(class_map.stem, dataset, scene, producer, folder)
        _project(item, dataset)
        _add_classes(item, dataset, scheme, class_map, folder)
    _add_metadata(item, class_map, style, folder)
    if probabilities is not None:
        _add_probabilities(item, Path(probabilities), scheme, folder)
    _add_links(item, scene, producer, folder)
    return item


def write_stac_item(class_map: str | os.PathLike, scene: str | os.PathLike, producer: Producer, *,
                    probabilities: str | os.PathLike | None = None, style: str | os.PathLike | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``landcover.stac.json`` beside ``landcover.tif`` (atomically); returns its path."""
    item = class_map_item(class_map, scene, producer, probabilities=probabilities, style=style)
    path = stac_path(class_map)
    text = json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=2)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def _item(item_id: str, dataset: rasterio.DatasetReader, scene: str | os.PathLike, producer: Producer,
          folder: Path) -> pystac.Item:
    """The Item itself: footprint, datetime, title, creation time, producer and geoseg version."""
    geometry = footprint(dataset)
    when, source = _scene_datetime(scene)
    item = pystac.Item(id=item_id, geometry=geometry, bbox=_bbox(geometry), datetime=when,
                       properties={"geoseg:datetime_source": source})
    item.common_metadata.title = f"Land cover of {Path(scene).name}"
    item.common_metadata.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    item.properties.update(producer.properties(folder))
    item.properties["geoseg:version"] = __version__
    return item


def _add_classes(item: pystac.Item, dataset: rasterio.DatasetReader, scheme: ClassScheme, class_map: Path,
                 folder: Path) -> None:
    """The class map as the ``classes`` asset: its band (raster extension) and classes (classification)."""
    asset = pystac.Asset(href=_href(class_map, folder), media_type=pystac.MediaType.COG, roles=["data"],
                         title="land-cover classes")
    item.add_asset("classes", asset)
    band = RasterBand.create(nodata=scheme.nodata_id, data_type=DataType.UINT8, sampling=Sampling.AREA,
                             spatial_resolution=_resolution(dataset))
    RasterExtension.ext(asset, add_if_missing=True).apply([band])
    counts = read_pixel_counts(class_map) or {}
    ClassificationExtension.ext(band, add_if_missing=True).classes = classifications(
        scheme, counts, dataset.width * dataset.height)
    ClassificationExtension.ext(asset, add_if_missing=True)   # declares the extension on the Item
    asset.extra_fields["raster:bands"] = [band.to_dict()]


def _add_metadata(item: pystac.Item, class_map: Path, style: str | os.PathLike | None, folder: Path) -> None:
    """The GDAL sidecar (category names, attribute table) and the QGIS style, when they exist."""
    pam = Path(f"{class_map}.aux.xml")
    if pam.is_file():
        item.add_asset("attributes", pystac.Asset(
            href=_href(pam, folder), media_type=pystac.MediaType.XML, roles=["metadata"],
            title="GDAL category names and raster attribute table (PAM)"))
    if style is not None:
        item.add_asset("style", pystac.Asset(href=_href(style, folder), media_type=pystac.MediaType.XML,
                                             roles=["metadata", "style"], title="QGIS layer style"))


def _add_links(item: pystac.Item, scene: str | os.PathLike, producer: Producer, folder: Path) -> None:
    """``derived_from`` the input scene and, when it is a file, the model."""
    tiff = Path(scene).suffix.lower() in (".tif", ".tiff")
    item.add_link(pystac.Link("derived_from", _href(scene, folder), title="input scene",
                              media_type=pystac.MediaType.GEOTIFF if tiff else None))
    if producer.file:
        item.add_link(pystac.Link("derived_from", _href(producer.file, folder),
                                  title=f"{producer.kind} {producer.name}"))


def classifications(scheme: ClassScheme, counts: Mapping[int, int], total: int) -> list[Classification]:
    """One class object per class (value, machine name, title, colour, pixel count, share) plus nodata.

    The extension's ``name`` allows only letters, digits, ``-`` and ``_``; the class name as written
    goes into ``title``.
    """
    classes = [Classification.create(value=c.id, name=_machine_name(c.name), title=c.name,
                                     color_hint=c.color[1:].upper(), count=int(counts.get(c.id, 0)),
                                     percentage=_percent(counts.get(c.id, 0), total))
               for c in scheme.classes]
    nodata = total - sum(int(counts.get(c.id, 0)) for c in scheme.classes) if counts else None
    classes.append(Classification.create(value=scheme.nodata_id, name="nodata", title="no data", nodata=True,
                                         count=nodata, percentage=_percent(nodata, total)))
    return classes


def footprint(dataset: rasterio.DatasetReader) -> dict[str, Any] | None:
    """The raster's outline in WGS84 (GeoJSON Polygon), its edges densified; None without a CRS."""
    if dataset.crs is None:
        return None
    steps = np.linspace(0, 1, EDGE_POINTS, endpoint=False)
    w, h = dataset.width, dataset.height
    cols = np.concatenate([steps * w, np.full_like(steps, w), (1 - steps) * w, np.zeros_like(steps)])
    rows = np.concatenate([np.zeros_like(steps), steps * h, np.full_like(steps, h), (1 - steps) * h])
    xs, ys = xy(dataset.transform, rows, cols, offset="ul")
    lons, lats = transform_points(dataset.crs, "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def _project(item: pystac.Item, dataset: rasterio.DatasetReader) -> None:
    """Projection extension: CRS code (else WKT2), shape, transform and native bounds."""
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    if dataset.crs is not None:
        epsg = dataset.crs.to_epsg()
        if epsg is not None:
            projection.code = f"EPSG:{epsg}"
        else:
            projection.code = None
            projection.wkt2 = dataset.crs.to_wkt()
    projection.shape = [dataset.height, dataset.width]
    projection.transform = list(dataset.transform)[:6]
    xs, ys = xy(dataset.transform, [0, 0, dataset.height, dataset.height], [0, dataset.width, 0, dataset.width],
                offset="ul")
    projection.bbox = [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]   # rotated grids too


def _add_probabilities(item: pystac.Item, path: Path, scheme: ClassScheme, folder: Path) -> None:
    """The probability raster as an asset: one uint8 band per class, scaled by 1/255."""
    asset = pystac.Asset(href=_href(path, folder), media_type=pystac.MediaType.COG, roles=["data"],
                         title="class probabilities (uint8, 0-255 = 0-1)")
    item.add_asset("probabilities", asset)
    bands = [RasterBand.create(data_type=DataType.UINT8, sampling=Sampling.AREA, scale=1 / 255, offset=0.0)
             for _ in scheme.classes]
    RasterExtension.ext(asset, add_if_missing=True).apply(bands)
    asset.extra_fields["raster:bands"] = [{**b.to_dict(), "description": f"probability of {c.name}"}
                                          for b, c in zip(bands, scheme.classes)]


def _scene_datetime(scene: str | os.PathLike) -> tuple[_dt.datetime, str]:
    """The Item's datetime and where it came from: the scene's TIFFTAG_DATETIME when it has one, else the
    map's creation time (STAC requires a datetime; ``geoseg:datetime_source`` says which one it is)."""
    try:
        with rasterio.open(scene) as dataset:
            stamp = dataset.tags().get("TIFFTAG_DATETIME")
        if stamp:
            when = _dt.datetime.strptime(stamp.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
            return when, "scene TIFFTAG_DATETIME"
    except (rasterio.errors.RasterioError, ValueError):
        pass
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0), "map creation (the scene records no date)"


def _href(path: str | os.PathLike, folder: Path) -> str:
    """A local file relative to the Item's folder; GDAL virtual paths and URLs as given."""
    text = os.fspath(path)
    if text.startswith("/vsi") or "://" in text:
        return text
    return Path(os.path.relpath(Path(text).resolve(), folder.resolve())).as_posix()


def _bbox(geometry: dict[str, Any] | None) -> list[float] | None:
    if geometry is None:
        return None
    lons, lats = zip(*geometry["coordinates"][0])
    return [min(lons), min(lats), max(lons), max(lats)]


def _resolution(dataset: rasterio.DatasetReader) -> float | None:
    x, y = dataset.res
    return float(x) if np.isclose(x, y) else None


def _machine_name(name: str) -> str:
    return _NAME_CHARS.sub("_", name.strip()).strip("_") or "class"


def _percent(count: int | None, total: int) -> float | None:
    return None if count is None or total == 0 else round(100.0 * count / total, 4)
