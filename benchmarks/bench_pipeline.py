"""Pipeline efficiency: time of the pure forward passes ÷ time of the whole `predict` on the same tiles.

Both are measured in this one process, on the same device and precision, with the network already built:
    forward  = Predictor.forward over every tile of the scene's grid (pixels prepared beforehand)
    pipeline = Predictor.predict(scene -> class map), reading, normalising, blending and writing included
An efficiency of 1.0 means I/O, blending and writing are completely hidden behind the model.

    python benchmarks/bench_pipeline.py [--size 2048] [--model M.safetensors] [--device auto] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import synthesise  # noqa: E402

from geoseg.io import read_tile  # noqa: E402
from geoseg.predict import Predictor  # noqa: E402
from geoseg.tiling import TileGrid  # noqa: E402


def forward_seconds(predictor: Predictor, scene: Path) -> tuple[float, int]:
    """Seconds spent in forward passes alone over the scene's tiles (read and normalised beforehand)."""
    with rasterio.open(scene) as ds:
        grid = TileGrid(ds.height, ds.width, predictor.tile, predictor.overlap)
        tiles = []
        for tile in grid:
            data, valid = read_tile(ds, range(1, ds.count + 1), tile.y, tile.x, tile.height, tile.width)
            tiles.append(predictor._pad(predictor.normalise(data, valid)))
    predictor.forward(np.stack(tiles[:predictor.batch_size]))  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(tiles), predictor.batch_size):
        predictor.forward(np.stack(tiles[i:i + predictor.batch_size]))
    return time.perf_counter() - t0, len(tiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = synthesise(args.workdir / f"zion_{args.size}.tif", args.size)
    predictor = Predictor(args.model, device=args.device, batch_size=args.batch_size)
    rows = []
    for _ in range(args.repeat):
        fwd, n = forward_seconds(predictor, scene)
        t0 = time.perf_counter()
        predictor.predict(scene, args.workdir / "pipeline_out.tif", overwrite=True)
        e2e = time.perf_counter() - t0
        rows.append((fwd, e2e))
        print(f"tiles {n}: forward {fwd:.2f} s, pipeline {e2e:.2f} s, efficiency {fwd / e2e:.3f}", flush=True)
    fwd, e2e = min(r[0] for r in rows), min(r[1] for r in rows)
    mp = args.size ** 2 / 1e6
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores; device {predictor.plan.device} "
          f"{predictor.plan.precision}; model {predictor.meta.name}; tile {predictor.tile}/{predictor.overlap}; "
          f"batch {predictor.batch_size}")
    print(f"| scene | forward s | pipeline s | efficiency | pipeline MP/s |\n|---|---|---|---|---|\n"
          f"| {args.size}x{args.size} | {fwd:.2f} | {e2e:.2f} | {fwd / e2e:.3f} | {mp / e2e:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
