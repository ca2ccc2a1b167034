"""Reference labels on a scene's pixel grid, from a class raster on any grid or from polygons.

Training and evaluation both need "the label of every scene pixel": a raster on another CRS or resolution
is reprojected by nearest neighbour (class ids must not be averaged); polygons with a class column are
rasterised, and pixels that no polygon covers are unlabelled, so sparse hand-drawn polygons work.
Labels come back as class *indices* into a scheme (``IGNORE_INDEX`` where unlabelled). A label id that the
scheme does not declare is an error that lists it (silently dropping it hid a third of one scene's labels),
unless the caller lists it in ``ignore_ids``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import reproject
from rasterio.windows import Window

from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.errors import InputFileError
from geoseg.io.rasters import open_raster
from geoseg.evaluation.metrics import IGNORE_INDEX

VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet", ".gml", ".kml"}


def is_vector(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def ids_to_indices(ids: np.ndarray, scheme: ClassScheme) -> np.ndarray:
    """Class ids → indices of ``scheme.classes``; ids outside the scheme (nodata too) → IGNORE_INDEX."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for index, info in enumerate(scheme.classes):
        lut[info.id] = index
    return lut[np.clip(ids, 0, 255).astype(np.uint8)]


class LabelSource:
    """Labels from ``path`` (raster or vector) readable window by window on a target grid."""

    def __init__(self, path: str | os.PathLike, scheme: ClassScheme, class_column: str | None = "class",
                 ignore_ids: Sequence[int] = ()):
        """``class_column`` None: polygons without a class column, all of the scheme's single class."""
        self.path = Path(path)
        self.scheme = scheme
        self.ignore_ids = frozenset(int(i) for i in ignore_ids)
        if not self.path.exists():
            raise InputFileError(f"{self.path}: label file not found; check the path")
        self._shapes: list[tuple[object, int]] | None = None
        self._vector_crs: CRS | None = None
        self._remap: np.ndarray | None = None            # label raster id -> scheme id, matched by class name
        self._unmatched: dict[int, str] = {}             # label raster ids whose name the scheme lacks
        if is_vector(self.path):
            self._load_vector(class_column)
        else:
            self._match_legend()

    def _match_legend(self) -> None:
        """A label raster that names its classes is matched to the scheme by name, never by number: the
        model's 1 "water" must not be scored against the labels' 1 "developed"."""
        with open_raster(self.path) as src:
            legend = ClassScheme.from_tags(src.tags())
        if legend is None:
            return                                       # bare ids: they are the scheme's ids
        by_name = {c.name.lower(): c.id for c in self.scheme.classes}
        lut = np.arange(256, dtype=np.uint8)
        for info in legend.classes:
            if info.name.lower() in by_name:
                lut[info.id] = by_name[info.name.lower()]
            else:
                lut[info.id] = IGNORE_INDEX
                if info.id not in self.ignore_ids:
                    self._unmatched[info.id] = info.name
        lut[legend.nodata_id] = IGNORE_INDEX
        if not np.array_equal(lut, np.arange(256)) or self._unmatched:
            self._remap = lut

    def _load_vector(self, column: str | None) -> None:
        import geopandas as gpd

        try:
            frame = gpd.read_file(self.path)
        except Exception as err:  # pyogrio raises several types for unreadable files
            raise InputFileError(f"{self.path}: cannot read polygons ({err}); pass a GeoPackage/GeoJSON/Shapefile") from err
        if column is None:
            if len(self.scheme.classes) != 1:
                raise InputFileError(f"{self.path}: polygons without a class column need a single class, the legend "
                                     f"has {len(self.scheme.classes)}; pass a class column")
            frame, column = frame.assign(_class=self.scheme.classes[0].id), "_class"
        if column not in frame.columns:
            raise InputFileError(f"{self.path}: no class column {column!r} (columns: {', '.join(map(str, frame.columns))});"
                             " pass --class-column / class_column")
        if frame.crs is None:
            raise InputFileError(f"{self.path}: the polygons have no CRS; assign one (e.g. ogr2ogr -a_srs)")
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values):       # class names (pandas 3: a string dtype)
            values = self._names_to_ids(values, column)
        frame = frame.assign(_id=values.astype(int))
        self._refuse_undeclared(frame["_id"].value_counts().to_dict(), f"column {column!r}", "features")
        frame = frame[~frame["_id"].isin(self.ignore_ids) & frame.geometry.notna() & ~frame.geometry.is_empty]
        self._vector_crs = CRS.from_user_input(frame.crs)
        self._shapes = list(zip(frame.geometry.values, frame["_id"].astype(int)))

    def _names_to_ids(self, values: pd.Series, column: str) -> pd.Series:
        by_name = {c.name.lower(): c.id for c in self.scheme.classes}
        names = values.astype(str).str.strip().str.lower()
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise InputFileError(f"{self.path}: class names {unknown[:5]} in column {column!r} are not in the "
                                 f"legend ({', '.join(c.name for c in self.scheme.classes)}); fix the names")
        return names.map(by_name)

    def _refuse_undeclared(self, counts: dict[int, int], where: str, unit: str) -> None:
        """Label ids the scheme does not know: an error listing them, unless ignored on purpose."""
        known = {c.id for c in self.scheme.classes} | {self.scheme.nodata_id, IGNORE_INDEX} | self.ignore_ids
        undeclared = {int(i): int(n) for i, n in counts.items() if int(i) not in known and n}
        if undeclared:
            listed = ", ".join(f"{i} ({n} {unit})"
                               for i, n in sorted(undeclared.items())[:8])
            raise InputFileError(f"{self.path}: label ids {listed} in {where} are not among the classes "
                                 f"({', '.join(f'{c.id} {c.name}' for c in self.scheme.classes)}); declare them, "
                                 f"or list them in {{ignore_ids}} to leave those pixels unlabelled",
                                 parameters=("ignore_ids",))

    def read(self, crs: CRS | None, transform: Affine, height: int, width: int) -> np.ndarray:
        """Class indices (height, width) uint8 for the grid ``crs``/``transform``; IGNORE_INDEX where unlabelled."""
        if self._shapes is not None:
            return ids_to_indices(self._rasterise(crs, transform, height, width), self.scheme)
        ids = self._warp(crs, transform, height, width)
        values, counts = np.unique(ids, return_counts=True)
        present = dict(zip(values.tolist(), counts.tolist()))
        self._refuse_unmatched(present)
        if self._remap is not None:
            return ids_to_indices(self._remap[ids], self.scheme)
        self._refuse_undeclared(present, "the raster", "pixels")
        return ids_to_indices(ids, self.scheme)

    def _refuse_unmatched(self, present: dict[int, int]) -> None:
        found = {i: name for i, name in self._unmatched.items() if present.get(i)}
        if found:
            listed = ", ".join(f"{i} {name!r} ({present[i]} pixels)" for i, name in sorted(found.items()))
            raise InputFileError(f"{self.path}: label classes {listed} have no class of that name in the legend "
                                 f"({', '.join(c.name for c in self.scheme.classes)}); rename them, or list their "
                                 "ids in {ignore_ids} to leave those pixels unlabelled", parameters=("ignore_ids",))

    def polygons(self, crs: CRS | None) -> list[tuple[object, int]]:
        """The label polygons (shapely geometry, class id) in ``crs``, one per feature: objects, for instance
        training. A raster label file has none: that is an error naming the file."""
        if self._shapes is None:
            raise InputFileError(f"{self.path}: objects are read from polygons (one per object), not a raster; "
                                 "pass a GeoPackage/GeoJSON/Shapefile of outlines")
        shapes = self._shapes
        if crs is not None and self._vector_crs is not None and CRS.from_user_input(crs) != self._vector_crs:
            import geopandas as gpd

            series = gpd.GeoSeries([g for g, _ in shapes], crs=self._vector_crs).to_crs(crs)
            shapes = list(zip(series.values, [v for _, v in shapes]))
        return shapes

    def _rasterise(self, crs: CRS | None, transform: Affine, height: int, width: int) -> np.ndarray:
        shapes = self.polygons(crs)
        if not shapes:
            return np.full((height, width), 255, np.uint8)
        return rasterize(shapes, out_shape=(height, width), transform=transform, fill=255, dtype="uint8")

    def _warp(self, crs: CRS | None, transform: Affine, height: int, width: int) -> np.ndarray:
        with open_raster(self.path) as src:
            if src.count != 1:
                raise InputFileError(f"{self.path}: a label raster has one band of class ids, this one has {src.count}")
            if _aligned(src.crs, src.transform, crs, transform) or src.crs is None or crs is None:
                if src.crs is None or crs is None:
                    if (src.crs is None) != (crs is None) or not _aligned(None, src.transform, None, transform):
                        raise InputFileError(f"{self.path}: labels or scene lack a CRS, so the labels must be on the "
                                         "scene's own grid; assign CRSs to both")
                col, row = ~src.transform @ (transform.c, transform.f)
                data = src.read(1, window=Window(round(col), round(row), width, height), boundless=True,
                                fill_value=src.nodata if src.nodata is not None else 255)
                return _as_ids(data, src.nodata)
            out = np.full((height, width), 255, np.uint8)
            # nearest neighbour: class ids must never be averaged; GDAL reads only the source area it needs
            reproject(rasterio.band(src, 1), out, src_nodata=src.nodata, dst_transform=transform, dst_crs=crs,
                      dst_nodata=255, resampling=Resampling.nearest)
            return out


def _as_ids(data: np.ndarray, nodata: float | None) -> np.ndarray:
    invalid = (data < 0) | (data > 255)
    if nodata is not None:
        invalid |= data == nodata
    return np.where(invalid, 255, data).astype(np.uint8)


def _aligned(crs_a: CRS | None, a: Affine, crs_b: CRS | None, b: Affine, tol: float = 1e-6) -> bool:
    """Same CRS, same pixel size and orientation, origins a whole number of pixels apart."""
    if crs_a != crs_b or not np.allclose([a.a, a.b, a.d, a.e], [b.a, b.b, b.d, b.e], rtol=tol, atol=0):
        return False
    col, row = ~a @ (b.c, b.f)
    return abs(col - round(col)) < 1e-3 and abs(row - round(row)) < 1e-3


#: Colours for classes whose labels bring none (a qualitative palette, distinct on a map).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94")


def labels_scheme(path: str | os.PathLike, class_column: str = "class", ignore_ids: Sequence[int] = ()
                  ) -> ClassScheme:
    """The classes that labels hold, for a map or a model made from them alone: a label raster's own legend
    (geoseg tags or colour table), else the ids it holds; polygons' class column, ids (named "class N") or
    names (ids 1.. in alphabetical order). ``ignore_ids`` are left out."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: label file not found; check the path")
    ignored = {int(i) for i in ignore_ids}
    if is_vector(path):
        import geopandas as gpd

        try:
            values = gpd.read_file(path, columns=[class_column], ignore_geometry=True)[class_column]
        except Exception as err:  # pyogrio raises several types for unreadable files and missing columns
            raise InputFileError(f"{path}: cannot read the class column {class_column!r} ({err}); pass "
                                 "{class_column} with the polygons' class attribute",
                                 parameters=("class_column",)) from err
        values = values.dropna()
        if pd.api.types.is_numeric_dtype(values):
            found = [(int(v), f"class {int(v)}") for v in sorted(set(values.astype(int))) if int(v) not in ignored]
        else:
            names = sorted({str(v).strip() for v in values} - {""}, key=str.lower)
            found = [(i + 1, name) for i, name in enumerate(names)]
        bad = [i for i, _ in found if not 0 <= i <= 254]
        if bad:
            raise InputFileError(f"{path}: class ids {bad[:5]} in column {class_column!r} are outside 0..254")
    else:
        with open_raster(path) as src:
            legend = ClassScheme.from_dataset(src)
            if legend is not None:
                classes = [c for c in legend.classes if c.id not in ignored]
                return ClassScheme(classes=classes, nodata_id=legend.nodata_id)
            counts = np.zeros(256, np.int64)
            for _, window in src.block_windows(1):
                counts += np.bincount(_as_ids(src.read(1, window=window), src.nodata).ravel(), minlength=256)
        found = [(i, f"class {i}") for i in np.flatnonzero(counts[:255]).tolist() if i not in ignored]
    if not found:
        raise InputFileError(f"{path}: holds no class labels; check the file (and {{class_column}} for polygons)",
                             parameters=("class_column",))
    return ClassScheme(classes=[ClassInfo(id=i, name=name, color=PALETTE[k % len(PALETTE)])
                                for k, (i, name) in enumerate(found)])
