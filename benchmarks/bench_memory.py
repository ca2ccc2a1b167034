"""Peak memory of `geoseg predict` against scene size (goal: flat, under 1.5 GB at 20k x 20k).

Each run is a fresh `python -m geoseg predict` subprocess; its peak RSS is read from
getrusage(RUSAGE_CHILDREN) after it exits. Scenes are synthesised from real Zion Landsat 8 pixels.

    python benchmarks/bench_memory.py [--sizes 5000 10000 20000] [--model M.safetensors] [--workdir DIR]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import synthesise  # noqa: E402


def peak_rss_mib_of(command: list[str]) -> tuple[float, float, str]:
    """(peak RSS MiB, wall seconds, last stdout line) of a child process run on its own."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("an earlier child used more memory: run each size in its own benchmark process")
    return peak / 1024, elapsed, result.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: the embedded model)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.one:  # child mode: one size, so ru_maxrss of the children is this size's alone
        scene = synthesise(args.workdir / f"zion_{args.one}.tif", args.one)
        command = [sys.executable, "-m", "geoseg", "predict", str(scene), "-o", str(args.workdir / f"out_{args.one}.tif"),
                   "--overwrite", "--progress", "json"]
        if args.model:
            command += ["--model", str(args.model)]
        peak, wall, last = peak_rss_mib_of(command)
        done = json.loads(last)
        print(json.dumps({"size": args.one, "peak_rss_mib": round(peak, 1), "wall_s": round(wall, 1),
                          "mp_per_s": done["megapixels_per_s"], "device": done["device"],
                          "precision": done["precision"]}))
        return 0
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", str(size), "--workdir", str(args.workdir)]
        if args.model:
            command += ["--model", str(args.model)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = rows[0]["peak_rss_mib"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| scene | peak RSS MiB | vs smallest | wall s | MP/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']}x{r['size']} | {r['peak_rss_mib']} | {r['peak_rss_mib'] / base:.3f} | {r['wall_s']} | {r['mp_per_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
