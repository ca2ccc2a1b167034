"""Peak memory of the object engine against scene size (goal: flat; only objects on open seams are held).

Each size gets a synthetic scene of painted objects (a jittered lattice, one object per ``CELL`` px cell,
rectangles and ellipses of 8 to 30 px, uint32 ids in a tiled DEFLATE GeoTIFF written strip by strip) and
a fresh child process that runs :class:`geoseg.vector.objects.ObjectPredictor` with the stub detector of
the tests (it "sees" the painted objects in each tile, cut at the tile's edges: tests/objects_stub.py), so
the whole engine runs (read path, reader thread, merge, polygons, FlatGeobuf writer) without a model's cost.
The child checks that every painted object came out exactly once and reports its peak RSS (getrusage).

    python benchmarks/bench_instances.py [--sizes 5000 20000] [--tile 512 --overlap 128] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: One object per cell of this many px.
CELL = 64
STRIP = 512


def synthesise(path: Path, size: int) -> int:
    """A ``size`` x ``size`` scene of objects painted with ids 1..n; returns n. Written in row strips."""
    import rasterio

    from tests.objects_stub import ORIGIN

    if path.exists():
        return int(path.with_suffix(".count").read_text())
    cells = size // CELL
    rng = np.random.default_rng(size)
    heights = rng.integers(8, 31, (cells, cells))
    widths = rng.integers(8, 31, (cells, cells))
    dy = rng.integers(0, CELL - heights + 1)
    dx = rng.integers(0, CELL - widths + 1)
    ellipse = rng.random((cells, cells)) < 0.5
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint32",
                       crs="EPSG:32633", transform=ORIGIN, tiled=True, blockxsize=512, blockysize=512,
                       compress="deflate", BIGTIFF="IF_SAFER") as ds:
        for y0 in range(0, size, STRIP):
            rows = np.arange(y0, min(size, y0 + STRIP))
            ids = np.zeros((len(rows), size), np.uint32)
            cy, cx = np.meshgrid(rows // CELL, np.arange(size) // CELL, indexing="ij")
            inside = (cy < cells) & (cx < cells)
            cy, cx = np.minimum(cy, cells - 1), np.minimum(cx, cells - 1)
            ly = rows[:, None] - cy * CELL - dy[cy, cx]
            lx = np.arange(size)[None, :] - cx * CELL - dx[cy, cx]
            h, w = heights[cy, cx], widths[cy, cx]
            box = (ly >= 0) & (ly < h) & (lx >= 0) & (lx < w)
            ry, rx = h / 2, w / 2
            round_ = ((ly + 0.5 - ry) / ry) ** 2 + ((lx + 0.5 - rx) / rx) ** 2 <= 1.0
            paint = inside & box & np.where(ellipse[cy, cx], round_, True)
            ids[paint] = (cy * cells + cx + 1)[paint].astype(np.uint32)
            ds.write(ids, 1, window=rasterio.windows.Window(0, y0, size, len(rows)))
    tmp.rename(path)
    path.with_suffix(".count").write_text(str(cells * cells))
    return cells * cells


def child(size: int, workdir: Path, tile: int, overlap: int) -> None:
    from geoseg.vector.objects import ObjectPredictor
    from tests.objects_stub import IdDetector, id_meta

    scene = workdir / f"objects_{size}.tif"
    expected = int(scene.with_suffix(".count").read_text())
    detector = IdDetector(id_meta(tile, overlap))
    t0 = time.perf_counter()
    summary = ObjectPredictor(detector, score_threshold=0.0).predict(scene, workdir / f"objects_{size}.fgb",
                                                                     overwrite=True)
    wall = time.perf_counter() - t0
    assert summary.n_objects == expected, (summary.n_objects, expected)
    print(json.dumps({"size": size, "objects": summary.n_objects, "tiles": summary.tiles_total,
                      "peak_pending_objects": summary.peak_pending_objects, "wall_s": round(wall, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench-objects"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.one:
        child(args.one, args.workdir, args.tile, args.overlap)
        return 0
    rows = []
    for size in args.sizes:
        t0 = time.perf_counter()
        synthesise(args.workdir / f"objects_{size}.tif", size)
        print(f"synthesised {size} in {time.perf_counter() - t0:.0f} s", flush=True)
        command = [sys.executable, __file__, "--one", str(size), "--workdir", str(args.workdir),
                   "--tile", str(args.tile), "--overlap", str(args.overlap)]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ,
                             "PYTHONPATH": str(ROOT)}).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = rows[0]["peak_rss_mib"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; tile {args.tile}, "
          f"overlap {args.overlap}")
    print("| scene | objects | tiles | peak pending objects | peak RSS MiB | vs smallest | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} x {r['size']} | {r['objects']} | {r['tiles']} | {r['peak_pending_objects']} | "
              f"{r['peak_rss_mib']} | {r['peak_rss_mib'] / base:.3f} | {r['wall_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
