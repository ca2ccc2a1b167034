"""Sparse labels: geoseg trained from a few polygons per class against a per-pixel RandomForest.

An analyst draws N polygons per class (benchmarks/sparse_polygons.py simulates it on the reference map),
saves them as a GeoPackage with a class column, and trains. Both contenders learn from exactly the pixels
those polygons cover (rasterised by geoseg's own LabelSource):
    geoseg        `geoseg.training.train` on a YAML config written beside the polygons (what a user runs),
                  then `geoseg.inference.predictor.predict` over the whole scene;
    RandomForest  scikit-learn, 100 trees, on the bands plus the normalised-difference indices an analyst
                  adds (NDVI, NDWI, and MNDWI/NDBI where a SWIR band exists) — the dzetsaka/SCP workflow.
Both maps are scored on every labelled reference pixel farther than --buffer px from any polygon pixel:
overall accuracy, mean IoU (classes present in the scored pixels), per-class IoU. Each (scene, N) runs
over several seeds (different polygons and training seeds); the table gives the median and the min..max.

Variants (--variants) switch one part of the recipe off or on, for the ablation table:
    recipe       the benchmark's recipe: geoseg's sparse-label defaults (held-out polygons, indices, windows
                 around labels) with a small ContextFCN, plain cross-entropy, no colour jitter, lr 0.01
    minimal      what a minimal config gets: scene, polygons, class column, band names and classes, every
                 other setting (network, loss, augmentation and the 1 000-step budget) left to geoseg
    rowblock     validation on a block of rows (the old split) instead of held-out whole polygons
    noindices    no derived index channels
    weights      class-weighted loss (inverse sqrt frequency, at most 5) on top of the class-balanced windows
    nobalance    windows placed uniformly instead of around a labelled pixel of a class drawn uniformly
    tta          the recipe's model predicted with flip/rotation test-time augmentation
    photometric  geoseg's default colour and noise augmentation (brightness 0.1, contrast 0.1, noise 0.02)
    noise        strong per-pixel Gaussian noise (0.3 std) with the default colour jitter: a margin around
                 every training pixel's spectrum
    depth1       one context level (1/4 resolution) instead of two
    cutmix       CutMix: half the windows get a box of another window's image and labels
    mixup        mixup of window pairs, lam ~ Beta(0.4, 0.4)
    mixcut       mixup and CutMix together
    selftrain    self-training: half way, the best model's confident predictions (p >= 0.9) become labels

    python benchmarks/bench_sparse.py --quick                  # zion, N=10, seeds 0-2, the recipe only
    python benchmarks/bench_sparse.py --scenes zion,sen1floods11 --n 3,10,30 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import yaml
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_polygons import draw_polygons  # noqa: E402

from geoseg.evaluation.labels import LabelSource  # noqa: E402
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix  # noqa: E402
from geoseg.inference.predictor import predict  # noqa: E402
from geoseg.io.legend import ClassInfo, ClassScheme  # noqa: E402
from geoseg.model.indices import compute_indices, usable_indices  # noqa: E402
from geoseg.training.config import load_config  # noqa: E402
from geoseg.training.loop import train  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class Scene:
    name: str
    image: Path
    reference: Path
    band_names: list[str]
    input_dtype: str
    input_nodata: float | None
    classes: list[dict]
    reference_nodata: int


def scenes(shared: Path) -> dict[str, Scene]:
    zion = shared / "zion_landsat8_nlcd"
    flood = shared / "sen1floods11_water"
    nlcd = [("water", "#466b9f"), ("developed", "#d99282"), ("barren", "#b3ac9f"), ("forest", "#68ab5f"),
            ("shrubland", "#ccb879"), ("herbaceous", "#dfdfc2"), ("cultivated", "#ab6c28"), ("wetlands", "#b8d9eb")]
    return {
        "zion": Scene("zion", zion / "landsat8_zion_b2345.tif", zion / "nlcd8_on_landsat_grid.tif",
                      ["blue", "green", "red", "nir"], "uint16", 65535,
                      [{"id": i, "name": n, "color": c} for i, (n, c) in enumerate(nlcd, start=1)], 255),
        "sen1floods11": Scene("sen1floods11", flood / "Spain_7370579_S2Hand.tif", flood / "Spain_7370579_LabelHand.tif",
                              ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"],
                              "int16", None,
                              [{"id": 0, "name": "land", "color": "#a0a060"}, {"id": 1, "name": "water", "color": "#2050c0"}],
                              -1),
    }


@dataclass
class Budget:
    """The training budget (short, so a benchmark fits on 2 busy cores; reported with the results)."""

    epochs: int
    iterations: int
    batch: int
    window: int


# ----------------------------------------------------------------------------------------- pieces
def read_scene(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Raw bands (float32), reference class ids (int32), validity, and the grid."""
    with rasterio.open(scene.image) as src:
        image = src.read().astype(np.float32)
        grid = {"crs": src.crs, "transform": src.transform, "height": src.height, "width": src.width}
        valid = np.ones(image.shape[1:], bool) if src.nodata is None else ~(image == src.nodata).all(0)
    with rasterio.open(scene.reference) as ref:
        reference = ref.read(1).astype(np.int32)
    ids = [c["id"] for c in scene.classes]
    valid &= np.isin(reference, ids)
    return image, reference, valid, grid


def write_polygons(scene: Scene, reference: np.ndarray, valid: np.ndarray, grid: dict, n: int, seed: int,
                   folder: Path) -> tuple[Path, list[str]]:
    drawn = draw_polygons(reference, valid, grid["transform"], [c["id"] for c in scene.classes], n, seed)
    names = {c["id"]: c["name"] for c in scene.classes}
    frame = gpd.GeoDataFrame({"class": drawn.class_ids}, geometry=drawn.polygons, crs=grid["crs"])
    path = folder / "polygons.gpkg"
    frame.to_file(path, driver="GPKG")
    return path, drawn.notes(names, n)


def polygon_labels(scene: Scene, polygons: Path, grid: dict) -> np.ndarray:
    """Class indices of the polygons on the scene grid, exactly as geoseg's training reads them."""
    scheme = ClassScheme(classes=[ClassInfo(**c) for c in scene.classes], nodata_id=255)
    return LabelSource(polygons, scheme, "class").read(grid["crs"], grid["transform"], grid["height"], grid["width"])


def scoring_mask(labels: np.ndarray, valid: np.ndarray, buffer: int) -> np.ndarray:
    """Valid reference pixels farther than ``buffer`` px from every polygon pixel."""
    far = distance_transform_edt(labels == IGNORE_INDEX) > buffer
    return valid & far


def score(predicted_ids: np.ndarray, reference: np.ndarray, mask: np.ndarray, scene: Scene) -> dict:
    ids = np.array([c["id"] for c in scene.classes])
    matrix = ConfusionMatrix(len(ids))
    matrix.update(_index(reference[mask], ids), _index(predicted_ids[mask], ids))
    scores = matrix.scores([c["name"] for c in scene.classes])
    return {"oa": scores.overall_accuracy, "miou": scores.mean_iou,
            "iou": {c.name: (None if np.isnan(c.iou) else c.iou) for c in scores.per_class}}


def _index(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Class ids (0..255; the mask has removed the reference's nodata) to class indices."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[ids] = np.arange(len(ids))
    return lut[np.clip(values, 0, 255)]


def rf_features(image: np.ndarray, band_names: list[str]) -> np.ndarray:
    """Bands plus the indices an analyst's RandomForest gets (same formulas as geoseg's derived channels)."""
    indices = compute_indices(image, band_names, usable_indices(band_names))
    return np.concatenate([image, indices]).reshape(image.shape[0] + indices.shape[0], -1).T


def random_forest(image: np.ndarray, labels: np.ndarray, scene: Scene, seed: int, threads: int
                  ) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    features = rf_features(image, scene.band_names)
    train = labels.ravel() != IGNORE_INDEX
    forest = RandomForestClassifier(n_estimators=100, n_jobs=threads, random_state=seed)
    forest.fit(features[train], labels.ravel()[train])
    indices = np.empty(features.shape[0], np.uint8)
    for start in range(0, features.shape[0], 500_000):
        indices[start:start + 500_000] = forest.predict(features[start:start + 500_000])
    ids = np.array([c["id"] for c in scene.classes])
    return ids[indices].reshape(labels.shape), time.perf_counter() - t0


def geoseg_config(scene: Scene, polygons: Path, folder: Path, seed: int, budget: Budget, variant: str) -> Path:
    """The YAML an analyst writes (scene, polygons, classes, a budget), with the variant's one change."""
    config: dict = {
        "name": "sparse", "scenes": [{"scene": str(scene.image), "labels": str(polygons), "class_column": "class"}],
        "validation": {"polygons": 0.2},
        "band_names": scene.band_names, "input_dtype": scene.input_dtype, "input_nodata": scene.input_nodata,
        "classes": scene.classes, "nodata_id": 255,
        "model": {"architecture": "ContextFCN", "encoder": None, "encoder_depth": 2, "hidden": [32]},
        "augment": {"brightness": 0.0, "contrast": 0.0, "noise_std": 0.0},
        "loss": {"dice_weight": 0.0, "class_weights": "none"},
        "optimiser": {"lr": 0.01},
        "train": {"epochs": budget.epochs, "iterations_per_epoch": budget.iterations, "batch_size": budget.batch,
                  "window": budget.window, "precise_bn_batches": 16, "seed": seed},
        "output_dir": str(folder / variant), "half": False,
    }
    if variant == "minimal":     # what a config of scene, polygons, class column, bands and classes gets
        config = {"name": "sparse", "scenes": config["scenes"], "band_names": scene.band_names,
                  "input_dtype": scene.input_dtype, "input_nodata": scene.input_nodata, "classes": scene.classes,
                  "train": {"seed": seed}, "output_dir": str(folder / variant)}
    if variant == "rowblock":
        height = rasterio.open(scene.image).height
        config["validation"] = {"axis": "rows", "start": int(height * 0.8), "buffer": 8}
    if variant == "noindices":
        config["indices"] = []
    if variant == "weights":
        config["loss"].update(class_weights="auto", max_class_weight=5)
    if variant == "photometric":
        del config["augment"]                      # geoseg's default colour and noise augmentation
    if variant == "noise":
        config["augment"] = {"brightness": 0.1, "contrast": 0.1, "noise_std": 0.3}
    if variant == "depth1":
        config["model"]["encoder_depth"] = 1
    if variant == "cutmix":
        config["augment"]["cutmix"] = 0.5
    if variant in ("mixup", "mixcut"):
        config["augment"]["mixup"] = 0.4
    if variant == "mixcut":
        config["augment"]["cutmix"] = 0.5
    if variant == "selftrain":
        config["train"]["self_training"] = {"start": 0.5, "confidence": 0.9}
    if variant == "nobalance":
        config["train"]["class_balanced"] = 0.0
        config["loss"]["class_weights"] = "none"
    path = folder / f"{variant}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_geoseg(scene: Scene, polygons: Path, folder: Path, seed: int, budget: Budget, variant: str,
               threads: int) -> tuple[np.ndarray, float, float, dict]:
    """Train (the variant's config), predict the whole scene; map ids, train seconds, predict seconds, log."""
    config = load_config(geoseg_config(scene, polygons, folder, seed, budget, "recipe" if variant == "tta" else variant))
    config.train.threads = threads
    t0 = time.perf_counter()
    bundle = Path(config.output_dir) / f"{config.name}.safetensors"
    if variant == "tta" and bundle.is_file():          # the recipe's model of this same run (same polygons)
        info = {"best_epoch": None, "val_miou": None}
    else:
        result = train(config, overwrite=True)
        bundle, info = result.bundle, {"best_epoch": result.best_epoch, "val_miou": result.scores.mean_iou}
    trained = time.perf_counter() - t0
    out = folder / f"{variant}_map.tif"
    t0 = time.perf_counter()
    predict(scene.image, out, bundle, overwrite=True, qml=False, stac=False, device="cpu",
            **({"tta": True} if variant == "tta" else {}))
    predicted = time.perf_counter() - t0
    with rasterio.open(out) as src:
        mapped = src.read(1).astype(np.int32)
    return mapped, trained, predicted, info


# ----------------------------------------------------------------------------------------- driver
def run(args: argparse.Namespace) -> list[dict]:
    catalogue = scenes(Path(args.shared))
    budget = Budget(args.epochs, args.iterations, args.batch, args.window)
    rows = []
    for name in args.scenes:
        scene = catalogue[name]
        image, reference, valid, grid = read_scene(scene)
        for n in args.n:
            for seed in args.seeds:
                folder = Path(args.work) / name / f"n{n}" / f"seed{seed}"
                folder.mkdir(parents=True, exist_ok=True)
                polygons, notes = write_polygons(scene, reference, valid, grid, n, seed, folder)
                labels = polygon_labels(scene, polygons, grid)
                mask = scoring_mask(labels, valid, args.buffer)
                base = {"scene": name, "n": n, "seed": seed, "notes": notes,
                        "train_pixels": int((labels != IGNORE_INDEX).sum()), "scored_pixels": int(mask.sum())}
                mapped, seconds = random_forest(image, labels, scene, seed, args.threads)
                rows.append({**base, "method": "RandomForest", "seconds": round(seconds, 1),
                             **score(mapped, reference, mask, scene)})
                _log(rows[-1])
                for variant in args.variants:
                    mapped, trained, predicted, info = run_geoseg(scene, polygons, folder, seed, budget, variant,
                                                                  args.threads)
                    rows.append({**base, "method": f"geoseg:{variant}", "seconds": round(trained, 1),
                                 "predict_s": round(predicted, 1), **info, **score(mapped, reference, mask, scene)})
                    _log(rows[-1])
                    if args.json:
                        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


def _log(row: dict) -> None:
    print(f"{row['scene']} n={row['n']} seed={row['seed']} {row['method']}: OA {row['oa']:.3f} "
          f"mIoU {row['miou']:.3f} ({row['seconds']} s){' ' + '; '.join(row['notes']) if row['notes'] else ''}",
          flush=True)


def table(rows: list[dict]) -> str:
    """Median [min..max] over seeds per (scene, N, method), with the geoseg - RF differences of the medians."""
    lines = ["| scene | N/class | method | OA median [min..max] | mIoU median [min..max] | ΔOA vs RF | ΔmIoU vs RF "
             "| train s (median) |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["scene"], r["n"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for scene, n in keys:
        group = [r for r in rows if r["scene"] == scene and r["n"] == n]
        methods = list(dict.fromkeys(r["method"] for r in group))
        medians = {m: (statistics.median(r["oa"] for r in group if r["method"] == m),
                       statistics.median(r["miou"] for r in group if r["method"] == m)) for m in methods}
        for m in methods:
            got = [r for r in group if r["method"] == m]
            oa, miou = [r["oa"] for r in got], [r["miou"] for r in got]
            rf = medians.get("RandomForest", (np.nan, np.nan))
            delta = ("", "") if m == "RandomForest" else (f"{medians[m][0] - rf[0]:+.3f}", f"{medians[m][1] - rf[1]:+.3f}")
            lines.append(f"| {scene} | {n} | {m} | {statistics.median(oa):.3f} [{min(oa):.3f}..{max(oa):.3f}] | "
                         f"{statistics.median(miou):.3f} [{min(miou):.3f}..{max(miou):.3f}] | {delta[0]} | {delta[1]} "
                         f"| {statistics.median(r['seconds'] for r in got):.0f} |")
    return "\n".join(lines)


def per_class_table(rows: list[dict]) -> str:
    """Median per-class IoU over seeds, per (scene, N, method)."""
    out = []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        names = list(next(r for r in rows if r["scene"] == scene)["iou"])
        out += [f"| {scene} N | method | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for n in sorted({r["n"] for r in rows if r["scene"] == scene}):
            group = [r for r in rows if r["scene"] == scene and r["n"] == n]
            for m in dict.fromkeys(r["method"] for r in group):
                cells = []
                for name in names:
                    values = [r["iou"][name] for r in group if r["method"] == m and r["iou"][name] is not None]
                    cells.append(f"{statistics.median(values):.2f}" if values else "-")
                out.append(f"| {n} | {m} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="zion, N=10, seeds 0-2, recipe only")
    parser.add_argument("--scenes", default="zion,sen1floods11")
    parser.add_argument("--n", default="3,10,30")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default="recipe")
    parser.add_argument("--buffer", type=int, default=5, help="px kept out of scoring around every polygon")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch and RF threads (1 is fastest on a busy machine)")
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--work", default="/tmp/bench_sparse")
    parser.add_argument("--json", help="also write every row here")
    parser.add_argument("--merge", nargs="+", help="print the tables of these --json files instead of running")
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.n, args.seeds = "zion", "10", "0,1,2"
    args.scenes = args.scenes.split(",")
    args.n = [int(v) for v in args.n.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.variants = args.variants.split(",")
    import torch
    torch.set_num_threads(args.threads)
    if args.merge:
        rows = [row for path in args.merge for row in json.loads(Path(path).read_text())]
        print(table(rows), per_class_table(rows), sep="\n\n")
        return
    t0 = time.perf_counter()
    rows = run(args)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"budget {args.epochs} epochs x {args.iterations} steps x {args.batch} windows of {args.window} px; "
          f"buffer {args.buffer} px; {time.perf_counter() - t0:.0f} s in all\n")
    print(table(rows))
    print()
    print(per_class_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
