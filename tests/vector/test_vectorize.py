"""geoseg.vectorize: agreement with GDAL, block-size independence, coverage, areas, formats, errors."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
from affine import Affine
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import shapes, sieve
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

import geoseg.vector.formats
import geoseg.vector.vectorize
from geoseg.errors import InputFileError, OutputError, OutputExistsError, ParameterError
from geoseg.vector.flat import FlatPolygons
from geoseg.inference.tiling import block_windows
from geoseg.vector.polygonize import ValueFilter, drop_collinear, merge_block_polygons, polygonize_block
from geoseg.vector.sieve import block_reader
from geoseg.vector.vectorize import vectorize

CROP = Path(__file__).parents[1] / "data" / "zion_nlcd8_crop.tif"
NODATA = 255


def read_crop() -> np.ndarray:
    with rasterio.open(CROP) as ds:
        return ds.read(1)


def gdal_reference(data: np.ndarray, nodata: int | None = NODATA) -> tuple[int, dict[int, float]]:
    """Polygon count and pixel area per class from GDALPolygonize over the whole array."""
    mask = data != nodata if nodata is not None else None
    areas: dict[int, float] = {}
    n = 0
    for geom, value in shapes(data, mask=mask, connectivity=4):
        n += 1
        areas[int(value)] = areas.get(int(value), 0.0) + shapely.geometry.shape(geom).area
    return n, areas


def canonical(geoms: np.ndarray, values: np.ndarray) -> list[tuple[int, bytes]]:
    """Order- and start-vertex-independent form of a polygon set."""
    clean = drop_collinear(FlatPolygons.from_geometries(np.asarray(geoms))).geometries()
    wkb = shapely.to_wkb(shapely.normalize(clean))
    return sorted(zip(values.tolist(), wkb))


def blockwise(data: np.ndarray, block: int, nodata: int | None = NODATA) -> list[tuple[int, bytes]]:
    keep = ValueFilter(nodata)
    pieces = (polygonize_block(data[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width], keep, w)
              for w in block_windows(*data.shape, block))
    batches = list(merge_block_polygons(pieces, *data.shape, block))
    geoms = np.concatenate([b.polygons.geometries() for b in batches])
    values = np.concatenate([b.values for b in batches])
    assert shapely.is_valid(geoms).all()
    return canonical(geoms, values)


def write_map(path: Path, data: np.ndarray, crs: str = "EPSG:32612", transform=None, **extra) -> Path:
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                   crs=crs, transform=transform or Affine(30, 0, 300000, 0, -30, 4150000), **extra)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


# --- agreement with GDAL -------------------------------------------------------------------------------

def test_matches_gdal_polygonize_on_real_labels(tmp_path):
    count, ref = gdal_reference(read_crop())
    summary = vectorize(CROP, tmp_path / "out.gpkg", block_size=100)
    df = pyogrio.read_dataframe(tmp_path / "out.gpkg")
    assert summary.n_polygons == len(df) == count
    names = {1: "water", 2: "developed", 3: "barren", 4: "forest", 5: "shrubland", 6: "herbaceous",
             7: "cultivated", 8: "wetlands"}
    got = df.groupby("class_id")["area_m2"].sum()
    assert sorted(got.index) == sorted(ref)
    for cid, pixels in ref.items():
        assert got[cid] == pytest.approx(pixels * 900.0, rel=1e-6)
        assert summary.area_m2[names[cid]] == pytest.approx(pixels * 900.0, rel=1e-6)
    assert (df["class_name"] == df["class_id"].map(names)).all()
    assert NODATA not in set(df["class_id"])


# --- block-size independence ---------------------------------------------------------------------------

def test_block_size_independence_on_real_labels():
    data = read_crop()
    whole = blockwise(data, max(data.shape))
    for block in (97, 33, 8):
        assert blockwise(data, block) == whole


def test_regions_spanning_many_blocks_keep_holes():
    data = np.zeros((60, 70), np.uint8)
    data[5:55, 5:65] = 1          # one frame spanning every block...
    data[12:48, 12:58] = 2        # ...around a hole filled by class 2, itself with holes
    data[20:25, 20:25] = 3
    data[30:40, 40:50] = NODATA   # a nodata hole: no polygon there
    whole = blockwise(data, 70)
    geoms = {v: shapely.from_wkb(w) for v, w in whole}
    assert shapely.get_num_interior_rings(geoms[1]) == 1
    assert shapely.get_num_interior_rings(geoms[2]) == 2
    assert geoms[1].area == 50 * 60 - 36 * 46
    for block in (7, 16, 31):
        assert blockwise(data, block) == whole


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(2, 9), st.integers(0, 2**32 - 1))
def test_block_size_independence_property(height, width, block, seed):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, size=(height // 3 + 1, width // 3 + 1)).astype(np.uint8)
    data = np.kron(coarse, np.ones((3, 3), np.uint8))[:height, :width]
    noise = rng.random(data.shape) < 0.15
    data[noise] = rng.integers(0, 4, size=noise.sum())
    data[data == 3] = NODATA
    assert blockwise(data, block) == blockwise(data, max(height, width))


@pytest.mark.parametrize("options", [{}, {"min_area": 12, "min_area_unit": "pixels"}, {"simplify": 45.0}])
def test_same_polygons_whatever_the_worker_count(tmp_path, options):
    """Worker processes only change where blocks are polygonized, never the result."""
    results = []
    for workers in (1, 2, 3):
        dst = tmp_path / f"w{workers}.fgb"
        summary = vectorize(CROP, dst, block_size=64, workers=workers, **options)
        df = pyogrio.read_dataframe(dst)
        assert summary.n_polygons == len(df)
        results.append(canonical(df.geometry.values, df.class_id.values))
    assert results[0] == results[1] == results[2]


def test_in_memory_dataset_is_polygonized_in_process(tmp_path):
    data = read_crop()
    with rasterio.MemoryFile() as memfile:
        with memfile.open(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8",
                          nodata=NODATA, crs="EPSG:32612", transform=Affine(30, 0, 300000, 0, -30, 4150000)) as ds:
            ds.write(data, 1)
        with memfile.open() as ds:
            summary = vectorize(ds, tmp_path / "m.fgb", block_size=100, workers=2)
    assert summary.n_polygons == gdal_reference(data)[0]


# --- sieve, simplify, dissolve, class filter -----------------------------------------------------------

def test_sieve_removes_exactly_the_regions_gdal_removes(tmp_path):
    """Which pixels change is GDAL's whole-scene decision; the receiving neighbour is chosen in a window."""
    data = read_crop()
    expected = sieve(data, 12, mask=data != NODATA, connectivity=4)
    with rasterio.open(CROP) as ds:
        read = block_reader(ds, NODATA, 12)
        got = np.zeros_like(data)
        for r in range(0, ds.height, 64):
            for c in range(0, ds.width, 64):
                win = Window(c, r, min(64, ds.width - c), min(64, ds.height - r))
                got[r:r + win.height, c:c + win.width] = read(win)
    assert np.array_equal(got != data, expected != data)
    count, _ = gdal_reference(expected)
    summary = vectorize(CROP, tmp_path / "s.fgb", min_area=12, min_area_unit="pixels", block_size=64)
    assert abs(summary.n_polygons - count) <= 0.01 * count
    assert summary.n_polygons < 0.5 * gdal_reference(data)[0]
    df = pyogrio.read_dataframe(tmp_path / "s.fgb")
    assert df.area_m2.min() >= 12 * 900
    assert df.area_m2.sum() == pytest.approx((data != NODATA).sum() * 900.0, rel=1e-9)
    in_map_units = vectorize(CROP, tmp_path / "m.fgb", min_area=12 * 900.0, block_size=64)
    assert in_map_units.n_polygons == summary.n_polygons


def test_simplified_coverage_has_no_gaps_or_overlaps(tmp_path):
    data = read_crop()
    data[data == NODATA] = 4
    src = write_map(tmp_path / "full.tif", data)
    vectorize(src, tmp_path / "simple.gpkg", simplify=45.0, block_size=90)
    df = pyogrio.read_dataframe(tmp_path / "simple.gpkg")
    geoms = df.geometry.values
    assert shapely.is_valid(geoms).all()
    raw = vectorize(src, tmp_path / "raw.gpkg")
    raw_vertices = shapely.get_num_coordinates(pyogrio.read_dataframe(tmp_path / "raw.gpkg").geometry.values)
    assert shapely.get_num_coordinates(geoms).sum() < 0.8 * raw_vertices.sum()
    assert len(df) == raw.n_polygons
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])).sum()
    extent = data.size * 900.0
    union = shapely.union_all(geoms)
    assert overlap < 1e-6 * extent
    assert union.area == pytest.approx(extent, rel=1e-9)
    assert shapely.area(geoms).sum() == pytest.approx(extent, rel=1e-9)
    assert shapely.get_num_interior_rings(union) == 0


def test_dissolve_and_class_filter(tmp_path):
    full = vectorize(CROP, tmp_path / "all.gpkg", block_size=128)
    summary = vectorize(CROP, tmp_path / "d.gpkg", dissolve=True, classes=["Forest", 5], block_size=128)
    df = pyogrio.read_dataframe(tmp_path / "d.gpkg")
    assert summary.n_polygons == 2 and sorted(df.class_name) == ["forest", "shrubland"]
    assert set(df.geom_type) == {"MultiPolygon"}
    for name in ("forest", "shrubland"):
        row = df[df.class_name == name].iloc[0]
        assert row.area_m2 == pytest.approx(full.area_m2[name], rel=1e-9)
        assert row.geometry.area == pytest.approx(full.area_m2[name], rel=1e-9)
        assert row.geometry.is_valid


# --- areas in geographic CRSs --------------------------------------------------------------------------

def test_geographic_area_matches_equal_area_projection(tmp_path):
    with rasterio.open(CROP) as ds:
        transform, width, height = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height,
                                                               *ds.bounds)
        data = np.full((height, width), NODATA, np.uint8)
        reproject(read_crop(), data, src_transform=ds.transform, src_crs=ds.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.nearest, src_nodata=NODATA, dst_nodata=NODATA)
    src = write_map(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=transform, nodata=NODATA)
    vectorize(src, tmp_path / "geo.gpkg", block_size=100)
    df = pyogrio.read_dataframe(tmp_path / "geo.gpkg")
    assert df.crs.to_epsg() == 4326
    albers = df.to_crs("EPSG:5070")               # CONUS Albers equal-area
    for cid, group in df.groupby("class_id"):
        expected = albers.loc[group.index].area.sum()
        assert group.area_m2.sum() == pytest.approx(expected, rel=5e-3)
    assert df.area_m2.sum() == pytest.approx(albers.area.sum(), rel=1e-3)


# --- formats and atomic output -------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["gpkg", "shp", "geojson", "parquet", "fgb"])
def test_each_format_round_trips(tmp_path, suffix):
    dst = tmp_path / f"polys.{suffix}"
    summary = vectorize(CROP, dst, block_size=160)
    if suffix == "parquet":
        df = gpd.read_parquet(dst)
    else:
        df = pyogrio.read_dataframe(dst)
    assert len(df) == summary.n_polygons > 100
    assert list(df.columns) == ["class_id", "class_name", "area_m2", "geometry"]
    assert df.crs.to_epsg() == (4326 if suffix == "geojson" else 32612)
    if suffix == "geojson":
        assert df.total_bounds[0] == pytest.approx(-113.2, abs=0.3)   # lon/lat around Zion
    else:
        assert df.geometry.area.sum() == pytest.approx(df.area_m2.sum(), rel=1e-9)
    if suffix == "parquet":      # the blocks' few polygons each are gathered, not one row group per block
        assert pq.ParquetFile(dst).num_row_groups == 1
    if suffix == "shp":
        assert dst.with_suffix(".prj").exists()
        assert dst.with_suffix(".cpg").read_text().strip().upper().startswith("UTF")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [dst.name] + ([dst.with_suffix(s).name for s in (".shx", ".dbf", ".prj", ".cpg")]
                      if suffix == "shp" else []))



def test_geopackage_is_version_1_2_for_older_gdal(tmp_path):
    """QGIS 3.22 (GDAL 3.6) warns on every load of a GeoPackage 1.4, which GDAL >= 3.7 writes by default."""
    dst = tmp_path / "polys.gpkg"
    vectorize(CROP, dst, block_size=160)
    with closing(sqlite3.connect(dst)) as db:
        application_id, = db.execute("PRAGMA application_id").fetchone()
        user_version, = db.execute("PRAGMA user_version").fetchone()
    assert application_id.to_bytes(4, "big") == b"GPKG"
    assert user_version == 10200
    assert pyogrio.read_info(dst)["features"] > 0

def test_existing_output_refused_without_overwrite(tmp_path):
    dst = tmp_path / "p.gpkg"
    dst.write_text("keep me")
    with pytest.raises(OutputExistsError):
        vectorize(CROP, dst)
    assert dst.read_text() == "keep me"
    vectorize(CROP, dst, overwrite=True)
    assert pyogrio.read_info(dst)["features"] > 0


@pytest.mark.parametrize("suffix", ["gpkg", "shp", "fgb", "parquet"])
def test_failure_mid_write_leaves_no_file(tmp_path, monkeypatch, suffix):
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk vanished")
        return real(*args)

    real = geoseg.vector.vectorize.area_m2
    monkeypatch.setattr(geoseg.vector.vectorize, "area_m2", failing)
    with pytest.raises(RuntimeError, match="disk vanished"):
        vectorize(CROP, tmp_path / f"p.{suffix}", block_size=64)
    assert list(tmp_path.iterdir()) == []


def test_shapefile_past_size_limit_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(geoseg.vector.formats, "SHAPEFILE_MAX_BYTES", 50_000)
    with pytest.raises(OutputError, match=r"2 GB limit.*GeoPackage.*\(fmt gpkg or fgb\).*min_area/simplify"):
        vectorize(CROP, tmp_path / "big.shp", block_size=64)
    assert list(tmp_path.iterdir()) == []


def test_progress_is_reported_in_blocks(tmp_path):
    class Recorder:
        def __init__(self):
            self.events = []

        def start(self, total, unit="tiles", megapixels=None):
            self.events.append(("start", total, unit))

        def advance(self, n=1):
            self.events.append(("advance", n))

        def done(self, **summary):
            self.events.append(("done", summary["n_polygons"]))

    rec = Recorder()
    summary = vectorize(CROP, tmp_path / "p.fgb", block_size=100, reporter=rec)
    assert rec.events[0] == ("start", 4 * 4, "blocks")
    assert sum(e[1] for e in rec.events if e[0] == "advance") == 16
    assert rec.events[-1] == ("done", summary.n_polygons)


def test_open_dataset_is_accepted_and_left_open(tmp_path):
    with rasterio.open(CROP) as ds:
        summary = vectorize(ds, tmp_path / "p.gpkg")
        assert not ds.closed
    assert summary.n_polygons == gdal_reference(read_crop())[0]


def test_wide_integer_rasters_without_nodata(tmp_path):
    data = (read_crop().astype(np.uint32) * 100_000)
    src = write_map(tmp_path / "u32.tif", data)
    summary = vectorize(src, tmp_path / "p.gpkg", block_size=100)
    assert summary.n_polygons == gdal_reference(read_crop(), nodata=None)[0]
    assert f"class_{NODATA * 100_000}" in summary.area_m2


# --- clear errors --------------------------------------------------------------------------------------

def test_input_errors_are_clear(tmp_path):
    with pytest.raises(InputFileError, match="missing.tif: file not found"):
        vectorize(tmp_path / "missing.tif", tmp_path / "o.gpkg")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(InputFileError, match="bad.tif: not a raster GDAL can read"):
        vectorize(bad, tmp_path / "o.gpkg")
    multi = tmp_path / "multi.tif"
    with rasterio.open(multi, "w", driver="GTiff", width=4, height=4, count=3, dtype="uint8", crs="EPSG:32612",
                       transform=Affine(30, 0, 300000, 0, -30, 4150000)) as ds:
        ds.write(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(InputFileError, match="3 bands"):
        vectorize(multi, tmp_path / "o.gpkg")
    floats = write_map(tmp_path / "f.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(InputFileError, match="float32, not integer"):
        vectorize(floats, tmp_path / "o.gpkg")
    with pytest.raises(ParameterError, match="^fmt kml: unknown polygon format"):
        vectorize(CROP, tmp_path / "o.kml", fmt="kml")
    with pytest.raises(OutputError, match=r"suffix '.txt'.*or pass fmt \(gpkg"):
        vectorize(CROP, tmp_path / "o.txt")
    with pytest.raises(ParameterError, match="^classes lava: not a class of .*crop.tif; known classes: .*forest"):
        vectorize(CROP, tmp_path / "o.gpkg", classes=["forest", "lava"])
    no_crs = write_map(tmp_path / "nocrs.tif", np.zeros((4, 4), np.uint8), crs=None)
    with pytest.raises(ParameterError, match="^fmt geojson: .*nocrs.tif has no CRS"):
        vectorize(no_crs, tmp_path / "o.geojson")
    huge = write_map(tmp_path / "huge.tif", np.full((4, 4), 2**40, np.int64))
    with pytest.raises(InputFileError, match="huge.tif: class values beyond the 32-bit integer range"):
        vectorize(huge, tmp_path / "o.gpkg")
    assert list(p.name for p in tmp_path.iterdir() if p.name.startswith("o")) == []


def test_union_of_pieces_keeps_every_hole():
    from geoseg.vector.polygonize import SeamGrid, union_pieces

    grid = SeamGrid(block_size=4, height=8, width=8)
    left = shapely.box(0, 0, 4, 4).difference(shapely.box(1, 1, 2, 2))         # holes inside their blocks
    right = shapely.box(4, 0, 8, 4).difference(shapely.box(5, 1, 6, 3))
    caps = [shapely.box(2, 4, 4, 5), shapely.box(4, 4, 6, 5)]                     # two blocks below
    merged = union_pieces([left, right, *caps], grid)
    assert merged.geom_type == "Polygon" and merged.is_valid
    assert merged.area == pytest.approx(left.area + right.area + 2 * caps[0].area)
    assert shapely.get_num_interior_rings(merged) == 2
    assert merged.equals(shapely.union_all([left, right, *caps]))
    hole = shapely.box(1, 1, 3, 3)                                                # a new hole across seams
    quarters = [shapely.box(x, y, x + 2, y + 2).difference(hole) for x in (0, 2) for y in (0, 2)]
    ring = union_pieces(quarters, SeamGrid(block_size=2, height=4, width=4))
    assert ring.is_valid and shapely.get_num_interior_rings(ring) == 1 and ring.area == 12
    clean = drop_collinear(FlatPolygons.from_geometries(np.array([ring]))).geometries()[0]
    assert shapely.normalize(clean).equals_exact(
        shapely.normalize(shapely.box(0, 0, 4, 4).difference(hole)), 0)


def test_an_undeclared_background_value_can_be_left_out(tmp_path: Path) -> None:
    """``nodata`` names a class value the map does not declare (a label raster's 0 background)."""
    with rasterio.open(CROP) as src:
        data, profile = src.read(1), src.profile.copy()
    data[:, :20] = 0
    profile.update(nodata=None)
    path = tmp_path / "background.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    everything = geoseg.vector.vectorize.vectorize(path, tmp_path / "all.gpkg")
    without = geoseg.vector.vectorize.vectorize(path, tmp_path / "without.gpkg", nodata=0)
    assert 0 in set(gpd.read_file(tmp_path / "all.gpkg")["class_id"].astype(int))
    assert 0 not in set(gpd.read_file(tmp_path / "without.gpkg")["class_id"].astype(int))
    assert without.n_polygons < everything.n_polygons
