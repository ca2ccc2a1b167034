"""Pipeline efficiency: time of the pure forward passes ÷ time of the whole `predict` on the same tiles.

Both are measured in this one process, on the same device and precision, with the network already built:
    forward  = Predictor.forward back to back on a sample of the scene's tiles, scaled to all of them
    pipeline = Predictor.predict(scene -> class map), reading, normalising, blending and writing included
An efficiency of 1.0 means I/O, blending and writing are completely hidden behind the model. The model's
busy share (time inside forward calls during the pipeline run ÷ its wall time) is printed too.

    python benchmarks/bench_pipeline.py [--size 2048] [--model M.safetensors | --unet34] [--device auto] [--repeat 2]
    python benchmarks/bench_pipeline.py --size 10980 --repeat 1      # a Sentinel-2-sized scene
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

from geoseg.inference.predictor import Predictor  # noqa: E402
from geoseg.inference.source import TileSource  # noqa: E402
from geoseg.inference.tiling import TileGrid  # noqa: E402


def forward_seconds(predictor: Predictor, scene: Path, sample: int = 64, passes: int = 3) -> tuple[float, int]:
    """Seconds the forward passes alone would take over all the scene's tiles.

    ``sample`` tiles spread evenly over the grid are read as the pipeline reads them (a TileSource), then run
    through the network back to back (after a warm-up), ``passes`` times; the fastest pass's time per batch, times the
    number of batches in the grid, is the reference. Back to back is what the pipeline's forward calls
    are when I/O keeps up. Timing each call between tile reads (the first version of this benchmark) let
    caches and clock speed change between calls: at 10 980² that reference took 1.7x longer than the whole
    pipeline. A sample keeps memory bounded on Sentinel-2-sized scenes.
    """
    batch = predictor.batch_size
    with rasterio.open(scene) as ds:
        tiles = list(TileGrid(ds.height, ds.width, predictor.tile, predictor.overlap))
        picked = [tiles[i] for i in np.unique(np.linspace(0, len(tiles) - 1, min(sample, len(tiles))).astype(int))]
        source = TileSource(ds, range(1, ds.count + 1), predictor.meta, predictor.tile)
        arrays = [pixels for pixels, _ in map(source.read, picked) if pixels is not None]
    batches = [np.stack(arrays[i:i + batch]) for i in range(0, len(arrays) - batch + 1, batch)]
    predictor.forward(batches[0])
    predictor.forward(batches[-1])
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        for stacked in batches:
            predictor.forward(stacked)
        best = min(best, (time.perf_counter() - t0) / len(batches))
    return best * -(-len(tiles) // batch), len(tiles)


class ModelBusy:
    """Seconds the pipeline spends inside the model's forward calls (wraps the backend's ``forward``).

    Busy ÷ wall time is the share of the run the model is computing. Unlike the efficiency ratio, it
    compares two figures from the same seconds, so a shared machine's speed changes between the
    reference and the pipeline run cannot skew it.
    """

    def __init__(self, predictor: Predictor):
        self.seconds = 0.0
        self._forward = predictor.backend.forward
        predictor.backend.forward = self

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._forward(batch)
        finally:
            self.seconds += time.perf_counter() - t0


def random_unet_resnet34(path: Path) -> Path:
    """A random-weight Unet / resnet34 bundle (4 bands, 8 classes): speed only, predictions meaningless."""
    import torch

    from geoseg.model.bundle import ModelBundle
    from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
    from geoseg.io.legend import ClassInfo, ClassScheme
    from geoseg.model.networks import build_model

    scheme = ClassScheme(classes=[ClassInfo(id=i, name=f"class{i}", color="#808080") for i in range(1, 9)])
    meta = BundleMeta(name="random-unet-resnet34", bands=[BandSpec(name=b, mean=10000, std=2500)
                                                          for b in ("blue", "green", "red", "nir")],
                      model=ModelSpec(architecture="Unet", encoder="resnet34"), input_dtype="uint16",
                      input_nodata=65535, scheme=scheme, gsd=30.0, tile_size=256, overlap=32)
    torch.manual_seed(0)
    return ModelBundle.from_module(meta, build_model(meta)).save(path, overwrite=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: the embedded default model)")
    parser.add_argument("--unet34", action="store_true", help="a random-weight Unet/resnet34 instead of --model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = synthesise(args.workdir / f"zion_{args.size}.tif", args.size)
    model = random_unet_resnet34(args.workdir / "unet34.safetensors") if args.unet34 else args.model
    predictor = Predictor(model, device=args.device, batch_size=args.batch_size)
    busy = ModelBusy(predictor)
    rows = []
    for _ in range(args.repeat):
        fwd, n = forward_seconds(predictor, scene)
        busy.seconds = 0.0
        t0 = time.perf_counter()
        predictor.predict(scene, args.workdir / "pipeline_out.tif", overwrite=True)
        e2e = time.perf_counter() - t0
        rows.append((fwd, e2e, busy.seconds / e2e))
        print(f"tiles {n}: forward {fwd:.2f} s, pipeline {e2e:.2f} s, efficiency {fwd / e2e:.3f}, "
              f"model busy {busy.seconds:.2f} s = {busy.seconds / e2e:.3f} of the pipeline", flush=True)
    fwd, e2e = min(r[0] for r in rows), min(r[1] for r in rows)
    busy_fraction = [r[2] for r in rows if r[1] == e2e][0]
    mp = args.size ** 2 / 1e6
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores; device {predictor.plan.device} "
          f"{predictor.plan.precision}; model {predictor.meta.name}; tile {predictor.tile}/{predictor.overlap}; "
          f"batch {predictor.batch_size}")
    print(f"| scene | forward s | pipeline s | efficiency | model busy | pipeline MP/s |\n|---|---|---|---|---|---|\n"
          f"| {args.size}x{args.size} | {fwd:.2f} | {e2e:.2f} | {fwd / e2e:.3f} | {busy_fraction:.3f} | {mp / e2e:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
