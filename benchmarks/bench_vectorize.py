"""Benchmark: geoseg.vector.vectorize against gdal_polygonize.py on synthetic class maps built from real labels.

Maps of N x N pixels are tiled from the Zion NLCD labels, mirrored so regions continue across tile
borders: "clean" (labels sieved to 50 px, then upsampled x8: large regions) and "noisy" (labels upsampled
x2: about 0.65 M polygons at 10k, 2.6 M at 20k). Each run is a fresh subprocess; time is wall-clock and
peak memory is summed over the child and its own worker processes, sampled from /proc 20 times a second:
PSS (shared pages split between the processes that share them: the memory the run really holds) and,
for geoseg, RSS (counts pages its forked workers share with it once per process). Run by hand:

    python benchmarks/bench_vectorize.py --sizes 10000 20000 --kinds clean noisy --format fgb
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import sieve
from rasterio.transform import from_origin

from geoseg.inference.tiling import row_windows

ZION = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "zion_landsat8_nlcd" / "nlcd8_on_landsat_grid.tif"
GDAL_PYTHON = "/usr/bin/python3"
GDAL_POLYGONIZE = "/usr/bin/gdal_polygonize.py"
DRIVERS = {"fgb": "FlatGeobuf", "gpkg": "GPKG", "shp": "ESRI Shapefile"}


def pattern(kind: str, labels: Path) -> np.ndarray:
    """A mirrored 2x2 super-tile of the labels, so tiling it has no seams."""
    with rasterio.open(labels) as ds:
        a = ds.read(1)
    if kind == "clean":
        a = np.kron(sieve(a, 50, connectivity=4), np.ones((8, 8), np.uint8))
    else:
        a = np.kron(a, np.ones((2, 2), np.uint8))
    top = np.hstack([a, a[:, ::-1]])
    return np.vstack([top, top[::-1]])


def make_map(path: Path, size: int, kind: str, labels: Path) -> None:
    tile = pattern(kind, labels)
    th, tw = tile.shape
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", nodata=255,
                   crs="EPSG:32612", transform=from_origin(300000, 4200000, 30, 30), tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as ds:
        for window in row_windows(size, size, 2048):
            rows = np.arange(window.row_off, window.row_off + window.height) % th
            cols = np.arange(size) % tw
            ds.write(tile[rows][:, cols], 1, window=window)


def process_tree(root: int) -> list[int]:
    """A process and all its descendants (geoseg's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack += children.get(pid, [])
    return tree


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MiB. PSS splits pages shared between processes (a forked worker shares
    the parent's libraries and imports) among them, so PSS adds up across processes; RSS does not."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(maxsplit=1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    except OSError:
        pass
    return values["Rss:"] / 1024, values["Pss:"] / 1024


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds and peak memory (RSS sum, PSS sum; MiB) of a child process and its own children,
    sampled 20 times a second."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_rss = peak_pss = 0.0
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss, pss = (sum(v) for v in zip(*(memory_mib(p) for p in process_tree(proc.pid))))
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, peak_rss, peak_pss


def count_features(path: Path) -> int:
    import pyogrio
    return pyogrio.read_info(path)["features"]


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make_map(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--kinds", nargs="+", default=["clean", "noisy"])
    parser.add_argument("--format", default="fgb", choices=sorted(DRIVERS))
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None, help="geoseg worker processes (default: one per core)")
    parser.add_argument("--labels", type=Path, default=ZION)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_vectorize_"))
    work.mkdir(parents=True, exist_ok=True)
    print("| map | polygons | gdal_polygonize s | geoseg s | time ratio | gdal peak PSS MiB | geoseg peak PSS MiB "
          "(all processes) | geoseg peak RSS MiB (sum) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for kind in args.kinds:
            src = work / f"{kind}_{size}.tif"
            if not src.exists():   # in a child, so this process stays small: children inherit its RSS
                subprocess.run([sys.executable, __file__, "--make", str(src), str(size), kind, str(args.labels)],
                               check=True)
            gdal_out, ours_out = work / f"gdal_{kind}_{size}.{args.format}", work / f"geoseg_{kind}_{size}.{args.format}"
            for p in (gdal_out, ours_out):
                for part in p.parent.glob(p.stem + ".*"):
                    part.unlink()
            g_t, _, g_pss = measure([GDAL_PYTHON, GDAL_POLYGONIZE, "-q", str(src), "-f", DRIVERS[args.format],
                                  str(gdal_out), "out", "class_id"])
            code = (f"from geoseg.vector.vectorize import vectorize; vectorize({str(src)!r}, {str(ours_out)!r}, "
                    f"block_size={args.block_size}, workers={args.workers})")
            o_t, o_rss, o_pss = measure([sys.executable, "-c", code])
            n_gdal, n_ours = count_features(gdal_out), count_features(ours_out)
            assert n_gdal == n_ours, (n_gdal, n_ours)
            print(f"| {kind} {size}x{size} | {n_ours} | {g_t:.1f} | {o_t:.1f} | {o_t / g_t:.2f} | "
                  f"{g_pss:.0f} | {o_pss:.0f} | {o_rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
