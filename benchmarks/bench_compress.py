"""Compression and ONNX: size on disk, CPU throughput and validation mIoU of every form of one model.

Every variant predicts the same held-out block (`sample_tiles/zion_landsat8_b2345.tif`, scored against
`sample_tiles/zion_nlcd8.tif`: exactly the default model's validation block) through the real
`Predictor` pipeline, in this one process, with the repeats interleaved so that a noisy shared machine
slows every variant alike. Rows:
    fp32 torch      the bundle as given                         fp16 bundle    weights stored as fp16
    ONNX fp32       exported graph on onnxruntime               int8 static    onnxruntime QDQ, calibrated
    int8 dynamic    onnxruntime, no calibration                 torch.ao int8  FX x86 static (why not torch)
    pruned          L1 channel pruning (torch and onnxruntime)
Calibration uses rows 0-991 of the full Zion scene (the training rows) when --calibration-scene is given
(e.g. ../shared/data/zion_landsat8_nlcd/landsat8_zion_b2345.tif); otherwise the evaluation block itself,
which flatters int8 a little and is said so in the output.

    python benchmarks/bench_compress.py [--model M.safetensors] [--calibration-scene FULL.tif] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geoseg.model.bundle import ModelBundle, load_bundle
from geoseg.model.loading import DEFAULT_MODEL_PATH
from geoseg.model.meta import BandSpec, BundleMeta, ModelSpec
from geoseg.io.legend import ClassInfo, ClassScheme
from geoseg.compress import calibration_tiles, prune, quantize
from geoseg.model.networks import build_model
from geoseg.model.onnx import export_onnx
from geoseg.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_tiles" / "zion_landsat8_b2345.tif"
LABELS = ROOT / "sample_tiles" / "zion_nlcd8.tif"
TRAIN_ROWS = 992  # rows 0-991: training and validation rows of configs/zion_landcover.yaml, never its test block


def random_default_like() -> ModelBundle:
    """Random weights, the default model's architecture and bands: speed and size only, mIoU meaningless."""
    names = ["water", "developed", "barren", "forest", "shrubland", "herbaceous", "cultivated", "wetlands"]
    scheme = ClassScheme(classes=[ClassInfo(id=i + 1, name=n, color="#808080") for i, n in enumerate(names)])
    meta = BundleMeta(name="random-unet-resnet18", bands=[BandSpec(name=b, mean=10000, std=2500) for b in
                                                          ("blue", "green", "red", "nir")],
                      model=ModelSpec(architecture="Unet", encoder="tu-resnet18", encoder_depth=4,
                                      decoder_channels=[128, 64, 32, 16]),
                      input_dtype="uint16", input_nodata=65535, scheme=scheme, gsd=30.0, tile_size=256, overlap=32)
    torch.manual_seed(0)
    return ModelBundle.from_module(meta, build_model(meta))


def mean_iou(predicted: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, nodata: int) -> float:
    """Mean IoU over the classes present in labels or prediction, on pixels with a valid label."""
    valid = labels != nodata
    lookup = np.full(256, len(class_ids), np.int64)
    lookup[class_ids] = np.arange(len(class_ids))
    t, p = lookup[labels[valid]], lookup[predicted[valid]]
    n = len(class_ids) + 1
    matrix = np.bincount(t * n + p, minlength=n * n).reshape(n, n)[:-1, :-1]
    union = matrix.sum(0) + matrix.sum(1) - np.diag(matrix)
    return float(np.mean(np.diag(matrix)[union > 0] / union[union > 0]))


def fx_int8(predictor: Predictor, tiles: np.ndarray) -> None:
    """Swap the torch network for a torch.ao FX static int8 one (x86 backend), calibrated on ``tiles``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    network = predictor.backend.network
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(network, get_default_qconfig_mapping("x86"), (torch.from_numpy(tiles[:1]),))
        with torch.inference_mode():
            for tile in tiles:
                prepared(torch.from_numpy(tile[None]))
        predictor.backend.network = convert_fx(prepared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.is_file() else None)
    parser.add_argument("--calibration-scene", type=Path, default=None, help="the full Zion scene (training rows used)")
    parser.add_argument("--amount", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and onnxruntime alike")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/geoseg-bench-compress"))
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = load_bundle(args.model) if args.model else random_default_like()
    source = ModelBundle(source.meta, {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict.items()})
    fp32 = source.save(work / "fp32.safetensors", overwrite=True)
    ModelBundle(source.meta, source.state_dict).save(work / "fp16.safetensors", overwrite=True, half=True)
    export_onnx(source, work / "fp32.onnx", overwrite=True)
    if args.calibration_scene:
        calibration = work / "calibration_train_rows.tif"
        with rasterio.open(args.calibration_scene) as ds:
            profile = {**ds.profile, "height": TRAIN_ROWS, "transform": ds.window_transform(Window(0, 0, ds.width, TRAIN_ROWS))}
            with rasterio.open(calibration, "w", **profile) as out:
                out.write(ds.read(window=Window(0, 0, ds.width, TRAIN_ROWS)))
                out.descriptions = ds.descriptions
        calibrated_on = f"{args.calibration_scene.name} rows 0-{TRAIN_ROWS - 1} (training rows)"
    else:
        calibration = SCENE
        calibrated_on = f"{SCENE.name} (the evaluation block itself: optimistic)"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    quantize(fp32, work / "int8.onnx", [calibration], overwrite=True)
    timings["quantize static"] = time.perf_counter() - t0
    quantize(fp32, work / "int8_dynamic.onnx", overwrite=True)
    t0 = time.perf_counter()
    pruned = prune(fp32, work / "pruned.safetensors", args.amount, overwrite=True)
    timings["prune"] = time.perf_counter() - t0
    export_onnx(load_bundle(work / "pruned.safetensors"), work / "pruned.onnx", overwrite=True)
    variants: list[tuple[str, Path, str, Callable[[Predictor], None] | None]] = [
        ("fp32 torch", fp32, "torch", None),
        ("fp16 bundle (torch fp32 compute)", work / "fp16.safetensors", "torch", None),
        ("ONNX fp32 (onnxruntime)", work / "fp32.onnx", "onnx", None),
        ("int8 static (onnxruntime QDQ)", work / "int8.onnx", "onnx", None),
        ("int8 dynamic (onnxruntime)", work / "int8_dynamic.onnx", "onnx", None),
        ("int8 torch.ao FX x86 (not shipped)", fp32, "torch",
         lambda p: fx_int8(p, calibration_tiles(p.meta, [calibration], None, 32))),
        (f"pruned {args.amount:.0%} torch", work / "pruned.safetensors", "torch", None),
        (f"pruned {args.amount:.0%} ONNX fp32", work / "pruned.onnx", "onnx", None),
    ]
    with rasterio.open(LABELS) as ds:
        labels, label_nodata = ds.read(1), int(ds.nodata)
    predictors = {}
    for name, path, backend, setup in variants:
        predictors[name] = Predictor(path, backend=backend)
        if setup:
            setup(predictors[name])
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    maps: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):
        for name, predictor in predictors.items():
            out = work / "map.tif"
            t0 = time.perf_counter()
            predictor.predict(SCENE, out, overwrite=True)
            seconds[name].append(time.perf_counter() - t0)
            with rasterio.open(out) as ds:
                maps[name] = ds.read(1)
    reference = maps["fp32 torch"]
    class_ids = source.meta.class_ids()
    megapixels = reference.size / 1e6
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} threads {torch.get_num_threads()}; model {source.meta.name}; scene {SCENE.name} "
          f"{reference.shape[1]}x{reference.shape[0]}; tile {source.meta.tile_size}/{source.meta.overlap}, batch 1; "
          f"best of {args.repeat}; int8 calibrated on {calibrated_on}")
    print(f"quantize (static) took {timings['quantize static']:.1f} s; prune {timings['prune']:.1f} s; "
          f"pruned parameters {pruned.parameters:,} of {pruned.source_parameters:,}")
    print("\n| variant | file | size MB | MP/s | speed vs fp32 torch | val mIoU | pixel agreement vs fp32 | raw s |")
    print("|---|---|---|---|---|---|---|---|")
    base = min(seconds["fp32 torch"])
    for name, path, _, setup in variants:
        best = min(seconds[name])
        size = "—" if setup else f"{path.stat().st_size / 1e6:.1f}"
        print(f"| {name} | {'—' if setup else path.name} | {size} | {megapixels / best:.3f} | {base / best:.2f}x | "
              f"{mean_iou(maps[name], labels, class_ids, label_nodata):.4f} | {(maps[name] == reference).mean():.4f} | "
              f"{' '.join(f'{s:.2f}' for s in seconds[name])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
