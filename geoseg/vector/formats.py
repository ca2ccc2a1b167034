"""Polygon output formats: which driver writes which suffix, and streaming writers for each.

Features arrive as a stream of :class:`FeatureBatch` and are written in one pass without holding the
layer in memory: OGR formats through ``pyogrio.write_arrow`` fed by an Arrow stream, GeoParquet through
``pyarrow`` row groups (the pyogrio wheels have no Parquet driver).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyogrio
import pyproj

from geoseg.errors import OutputError

#: format name -> (OGR driver or None for pyarrow, recognised suffixes)
FORMATS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "gpkg": ("GPKG", (".gpkg",)),
    "shp": ("ESRI Shapefile", (".shp",)),
    "geojson": ("GeoJSON", (".geojson", ".json")),
    "parquet": (None, (".parquet", ".geoparquet")),
    "fgb": ("FlatGeobuf", (".fgb",)),
}
#: GeoPackage 1.2, what GDAL wrote before 3.7: QGIS 3.22 (GDAL 3.6) warns on every load of a 1.4 file, and
#: nothing we write (integer, text, real fields; polygons) needs 1.3 or 1.4.
GPKG_VERSION = "1.2"
#: Other names accepted for a format.
ALIASES = {"geoparquet": "parquet", "shapefile": "shp", "json": "geojson", "flatgeobuf": "fgb"}
#: GeoParquet row group size: features are gathered (as compact WKB) to this many rows per group.
ROW_GROUP_ROWS = 65536
#: GDAL refuses .shp/.dbf files past 2 GB; we refuse first, with a message that says what to do.
SHAPEFILE_MAX_BYTES = 2**31 - 1
#: Bytes per .dbf record as GDAL writes our fields: deletion flag, class_id N(10), class_name C(80),
#: area_m2 N(24.15); objects add instance_id N(18) and score N(24.15).
_DBF_RECORD = 1 + 10 + 80 + 24
_DBF_OBJECT_RECORD = _DBF_RECORD + 18 + 24
#: Shapefile field names have at most 10 characters: ours that are longer get these names there.
SHAPEFILE_NAMES = {"instance_id": "inst_id"}

#: Arrow buffers come from malloc, which hands freed memory back; pyarrow's default pool (mimalloc) kept
#: ~50 MB more resident while streaming a noisy 10k map.
MEMORY_POOL = pa.system_memory_pool()

_GEOMETRY = pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"})
SCHEMA = pa.schema([
    pa.field("class_id", pa.int32()),
    pa.field("class_name", pa.string()),
    pa.field("area_m2", pa.float64()),
    _GEOMETRY,
])
#: Objects (instance segmentation): one polygon per object, with its id and the detector's score.
OBJECT_SCHEMA = pa.schema([
    pa.field("instance_id", pa.int64()),
    pa.field("class_id", pa.int32()),
    pa.field("class_name", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("area_m2", pa.float64()),
    _GEOMETRY,
])


@dataclass
class FeatureBatch:
    """Polygons in the output CRS (as WKB) with their attributes."""

    wkb: pa.BinaryArray
    class_id: np.ndarray
    class_name: np.ndarray
    area_m2: np.ndarray

    def to_arrow(self) -> pa.RecordBatch:
        columns = ((self.class_id, pa.int32()), (self.class_name, pa.string()), (self.area_m2, pa.float64()))
        arrays = [pa.array(values, kind, memory_pool=MEMORY_POOL) for values, kind in columns]
        return pa.record_batch([*arrays, self.wkb], schema=SCHEMA)


@dataclass
class ObjectBatch:
    """Objects in the output CRS (as WKB) with their attributes (:data:`OBJECT_SCHEMA`)."""

    wkb: pa.BinaryArray
    instance_id: np.ndarray
    class_id: np.ndarray
    class_name: np.ndarray
    score: np.ndarray
    area_m2: np.ndarray

    def to_arrow(self) -> pa.RecordBatch:
        columns = ((self.instance_id, pa.int64()), (self.class_id, pa.int32()), (self.class_name, pa.string()),
                   (self.score, pa.float64()), (self.area_m2, pa.float64()))
        arrays = [pa.array(values, kind, memory_pool=MEMORY_POOL) for values, kind in columns]
        return pa.record_batch([*arrays, self.wkb], schema=OBJECT_SCHEMA)


Batch = FeatureBatch | ObjectBatch


def format_name(fmt: str) -> str | None:
    """The format key for a name, suffix or alias (``GPKG``, ``.shp``, ``geoparquet``); None if unknown."""
    key = fmt.lower().lstrip(".")
    key = ALIASES.get(key, key)
    return key if key in FORMATS else None


def format_of(dst: str | Path) -> str:
    """The format key for the suffix of ``dst`` (used when no format is given)."""
    suffix = Path(dst).suffix.lower()
    for key, (_, suffixes) in FORMATS.items():
        if suffix in suffixes:
            return key
    raise OutputError(f"{dst}: cannot tell the polygon format from the suffix {suffix!r}; "
                      f"use a .gpkg/.shp/.geojson/.parquet/.fgb name or pass {{fmt}} ({', '.join(FORMATS)})",
                      parameters=("fmt",))


def write_features(batches: Iterable[Batch], path: Path, fmt: str, layer: str, crs_wkt: str | None,
                   geometry_type: str, schema: pa.Schema = SCHEMA) -> None:
    """Stream ``batches`` into ``path`` (a temporary name; the caller renames it when complete).

    ``schema`` is that of the batches: :data:`SCHEMA` (land-cover polygons) or :data:`OBJECT_SCHEMA`.
    """
    if fmt == "shp":
        record = _DBF_OBJECT_RECORD if schema is OBJECT_SCHEMA else _DBF_RECORD
        batches = _shapefile_guard(batches, path, record)
        schema = pa.schema([f.with_name(SHAPEFILE_NAMES.get(f.name, f.name)) for f in schema])
    if fmt == "parquet":
        _write_geoparquet(batches, path, crs_wkt, geometry_type, schema)
        return
    driver = FORMATS[fmt][0]
    stream = _Stream(batches, schema)
    options = {"shp": {"ENCODING": "UTF-8"}, "geojson": {"RFC7946": "YES"}}.get(fmt)
    dataset_options = {"VERSION": GPKG_VERSION} if fmt == "gpkg" else None
    try:
        pyogrio.write_arrow(pa.RecordBatchReader.from_batches(schema, iter(stream)), str(path),
                            layer=layer, driver=driver, geometry_name="geometry", geometry_type=geometry_type,
                            crs=crs_wkt, layer_options=options, dataset_options=dataset_options)
    except Exception:
        if stream.error is not None:   # the Arrow stream hides the producer's exception: raise it instead
            raise stream.error from None
        raise


class _Stream:
    """Arrow batches from feature batches, remembering an exception raised while producing them."""

    def __init__(self, batches: Iterable[Batch], schema: pa.Schema) -> None:
        self.batches = batches
        self.schema = schema
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.batches:
                arrow = batch.to_arrow()
                yield arrow if arrow.schema.names == self.schema.names else pa.record_batch(arrow.columns,
                                                                                           schema=self.schema)
        except BaseException as exc:
            self.error = exc
            raise


def _shapefile_guard(batches: Iterable[Batch], path: Path, record: int) -> Iterator[Batch]:
    """Refuse, before GDAL fails, a Shapefile whose .shp or .dbf would pass 2 GB.

    A .shp polygon record is 52 bytes + 4 per ring + 16 per vertex; its WKB is 9 + 4 per ring + 16 per
    vertex: the record is the WKB plus 43 bytes (a little less for a dissolved MultiPolygon).
    """
    shp, dbf = 100, 32 + 33 * 4 + 1
    for batch in batches:
        shp += int(pc.sum(pc.binary_length(batch.wkb)).as_py() or 0) + 43 * len(batch.wkb)
        dbf += record * len(batch.wkb)
        if max(shp, dbf) > SHAPEFILE_MAX_BYTES:
            raise OutputError(f"{path}: the polygons pass the Shapefile 2 GB limit; write GeoPackage or "
                              "FlatGeobuf instead ({fmt} gpkg or fgb), or reduce them with {min_area}/{simplify}",
                              parameters=("fmt", "min_area", "simplify"))
        yield batch


def _write_geoparquet(batches: Iterable[Batch], path: Path, crs_wkt: str | None,
                      geometry_type: str, schema: pa.Schema) -> None:
    column = {"encoding": "WKB", "geometry_types": [geometry_type]}
    if crs_wkt is not None:
        column["crs"] = pyproj.CRS.from_wkt(crs_wkt).to_json_dict()
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    schema = schema.with_metadata({b"geo": json.dumps(geo).encode()})
    with pq.ParquetWriter(str(path), schema, compression="zstd", memory_pool=MEMORY_POOL) as writer:
        for group in _row_groups(batches):
            writer.write_table(pa.Table.from_batches(group).replace_schema_metadata(schema.metadata),
                               row_group_size=ROW_GROUP_ROWS)


def _row_groups(batches: Iterable[Batch]) -> Iterator[list[pa.RecordBatch]]:
    """Arrow batches gathered to about :data:`ROW_GROUP_ROWS` rows (a clean map's blocks have few polygons
    each; one row group per block would make a slow file to read)."""
    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        group.append(batch.to_arrow())
        rows += group[-1].num_rows
        if rows >= ROW_GROUP_ROWS:
            yield group
            group, rows = [], 0
    if group:
        yield group
