"""Dask: scaling from 1 to 2 workers, many-scene throughput, the cost of partitioning one scene, and the
figures a model of N machines rests on (scheduler overhead per task, the single writer's rate, remote reads).

Everything runs in this one process against LocalClusters started once each (start-up is not timed), with
the default model, on synthetic scenes made of real Zion pixels (benchmarks/synth.py):

    one      Predictor.predict of the big scene inside a 1-worker cluster (one task: the single-process engine
             with the workers' thread settings) -- the reference the other ratios are taken against
    part1/2  predict_partitioned of the big scene, K partitions, on 1 and on 2 workers
    many1/2  predict_many of S small scenes on 1 and on 2 workers
    tasks    round trip of no-op tasks (scheduler + comms overhead per task)
    writer   the assembling writer alone: seconds after the last part is recorded
    reads    reading the big scene window by window from a local file and from /vsicurl/ on 127.0.0.1

    PYTHONPATH=. python benchmarks/bench_distributed.py [--size 2048] [--partitions 3] [--scenes 4] [--small 768] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import synthesise  # noqa: E402

import distributed  # noqa: E402

from geoseg.inference.distributed import cached_predictor, make_fingerprint, predict_many, split_options  # noqa: E402
from geoseg.inference.partitioned import predict_partitioned  # noqa: E402
from geoseg.inference.tiling import TileGrid, block_windows, row_partitions  # noqa: E402
from geoseg.model.loading import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from geoseg.progress import NullReporter  # noqa: E402


class LastPart(NullReporter):
    """Notes when the last partition is recorded: what follows is the single writer's assembly."""

    def __init__(self) -> None:
        self.at = 0.0

    def advance(self, n: int = 1) -> None:
        self.at = time.perf_counter()


def cluster(workers: int) -> distributed.Client:
    return distributed.Client(distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0", silence_logs=logging.ERROR))


def warm(client: distributed.Client) -> None:
    """Every worker loads the model once (the per-process cache, as a run's first task would) before
    anything is timed."""
    setup, run_options = split_options({}, "bench")
    sha = make_fingerprint(DEFAULT_MODEL_PATH, setup, run_options)["model_sha256"]
    client.run(cached_predictor, str(DEFAULT_MODEL_PATH), sha, setup)


def timed(run: Callable[[], object], name: str) -> float:
    """Seconds ``run()`` takes, printed at once (a long run on a shared machine keeps what it measured)."""
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    print(f"  {name}: {seconds:.2f} s", flush=True)
    return seconds


def noop(i: int) -> int:
    return i


def task_overhead(client: distributed.Client, count: int = 400) -> float:
    """Seconds per task of submitting, running and gathering no-op tasks."""
    client.gather(client.map(noop, range(20), pure=False))
    t0 = time.perf_counter()
    client.gather(client.map(noop, range(count), pure=False))
    return (time.perf_counter() - t0) / count


def read_all(path: str) -> float:
    """Seconds to read every 1024-px block of all bands."""
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as ds:
        for window in block_windows(ds.height, ds.width, 1024):
            ds.read(window=window)
    return time.perf_counter() - t0


def serve(folder: Path) -> tuple[subprocess.Popen, str]:
    """The tests' range-serving HTTP server on 127.0.0.1, in a process of its own (as a real one is)."""
    server = subprocess.Popen([sys.executable, "-c", f"from tests.inference.conftest import serve; "
                               f"serve({str(folder)!r})"], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    return server, f"http://127.0.0.1:{int(server.stdout.readline())}"  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="side of the big scene in px")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=4, help="small scenes in the many-scene run")
    parser.add_argument("--small", type=int, default=768, help="side of each small scene in px")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench"))
    args = parser.parse_args()
    cache = args.workdir
    cache.mkdir(parents=True, exist_ok=True)
    big = synthesise(cache / f"zion_{args.size}.tif", args.size)
    small = synthesise(cache / f"zion_{args.small}.tif", args.small)
    meta = load_model(None).meta
    grid = TileGrid(args.size, args.size, meta.tile_size, meta.overlap)
    parts = row_partitions(grid, args.partitions)
    halo = sum((p.row - p.first) * len(grid.xs) for p in parts)
    mp, small_mp = args.size ** 2 / 1e6, args.small ** 2 * args.scenes / 1e6
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (shared with other "
          f"sessions); big scene {args.size}^2 ({len(grid)} tiles of {meta.tile_size}, overlap {meta.overlap}, "
          f"{len(grid.ys)} tile rows), {len(parts)} partitions, {halo} halo tiles "
          f"(+{halo / len(grid):.1%} compute); {args.scenes} scenes of {args.small}^2", flush=True)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        folder = Path(tmp)
        for workers in (1, 2):
            with cluster(workers) as client:
                warm(client)
                if workers == 1:
                    out = folder / "one"
                    out.mkdir()
                    results["one"] = timed(lambda: predict_many([big], out, scheduler=client), "one process")
                    results["task_s"] = task_overhead(client)
                last = LastPart()
                dst = folder / f"part{workers}.tif"
                results[f"part{workers}"] = timed(lambda: predict_partitioned(
                    big, dst, partitions=args.partitions, scheduler=client, reporter=last),
                    f"{args.partitions} partitions on {workers} worker(s)")
                results[f"writer{workers}"] = time.perf_counter() - last.at
                assert dst.read_bytes() == (folder / "one" / big.name).read_bytes(), "partitioned map differs"
                out = folder / f"many{workers}"
                out.mkdir()
                scenes = []
                for i in range(args.scenes):
                    link = folder / f"s{workers}_{i}.tif"
                    link.symlink_to(small)
                    scenes.append(link)
                results[f"many{workers}"] = timed(lambda: predict_many(scenes, out, scheduler=client),
                                                 f"{args.scenes} scenes on {workers} worker(s)")
        server, url = serve(big.parent)
        try:
            read_all(str(big))
            results["read_local"] = read_all(str(big))
            results["read_http"] = read_all(f"/vsicurl/{url}/{big.name}")
        finally:
            server.kill()
    size_mb = big.stat().st_size / 2**20
    r = results
    print(f"\nsingle scene {args.size}^2 ({mp:.1f} MP)")
    print(f"  one process (1 worker, 1 task)      {r['one']:8.2f} s  {mp / r['one']:.3f} MP/s")
    print(f"  {len(parts)} partitions on 1 worker        {r['part1']:8.2f} s  overhead x{r['part1'] / r['one']:.3f} "
          f"(writer {r['writer1']:.2f} s)")
    print(f"  {len(parts)} partitions on 2 workers       {r['part2']:8.2f} s  speed-up x{r['part1'] / r['part2']:.2f} "
          f"efficiency {r['part1'] / r['part2'] / 2:.2f}; vs one process x{r['one'] / r['part2']:.2f} "
          f"(writer {r['writer2']:.2f} s, {mp / r['writer2']:.1f} MP/s)")
    print(f"many scenes: {args.scenes} x {args.small}^2 ({small_mp:.1f} MP)")
    print(f"  1 worker                            {r['many1']:8.2f} s  {args.scenes / r['many1']:.3f} scenes/s "
          f"{small_mp / r['many1']:.3f} MP/s")
    print(f"  2 workers                           {r['many2']:8.2f} s  {args.scenes / r['many2']:.3f} scenes/s  "
          f"speed-up x{r['many1'] / r['many2']:.2f} efficiency {r['many1'] / r['many2'] / 2:.2f}")
    print(f"scheduler: {r['task_s'] * 1e3:.2f} ms per no-op task round trip")
    print(f"reads of the {size_mb:.0f} MB scene: local {size_mb / r['read_local']:.0f} MB/s, "
          f"/vsicurl/ on 127.0.0.1 {size_mb / r['read_http']:.0f} MB/s")


if __name__ == "__main__":
    main()
