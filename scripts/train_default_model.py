"""Train the embedded default model and measure it against baselines on the same held-out block.

    python scripts/train_default_model.py            # train, evaluate, write the table, install the model
    python scripts/train_default_model.py --skip-train --bundle runs/zion_landcover/zion_landcover.safetensors

Needs ../shared/data/zion_landsat8_nlcd (developers only). Every row of the table is scored by
geoseg.evaluation.metrics on the test block (rows 1024-1427, shipped as sample_tiles/): the model and the
index methods through `geoseg.evaluation.evaluate` (the pipeline users run), the constant and RandomForest baselines
on the same pixels in memory. Prints a Markdown table and writes it to runs/zion_landcover/baselines.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoseg.model.bundle import ModelBundle, load_bundle  # noqa: E402
from geoseg.model.loading import DEFAULT_MODEL_PATH  # noqa: E402
from geoseg.evaluation.forest import new_forest, pixel_features  # noqa: E402
from geoseg.evaluation.evaluate import evaluate  # noqa: E402
from geoseg.evaluation.labels import ids_to_indices  # noqa: E402
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, Scores  # noqa: E402
from geoseg.progress import make_reporter  # noqa: E402
from geoseg.training import load_config, train  # noqa: E402
from geoseg.training.data import split_boxes  # noqa: E402

CONFIG = ROOT / "configs" / "zion_landcover.yaml"
RF_SAMPLES = 200_000


def in_memory_baselines(config_path: Path, names: list[str]) -> dict[str, Scores]:
    """Majority class (of the training pixels, and of the scored block as an oracle) and a RandomForest trained
    on exactly the model's training pixels (outside the validation and test blocks and their buffers)."""
    config = load_config(config_path)
    spec = config.scenes[0]
    with rasterio.open(spec.scene) as ds:
        image = ds.read(out_dtype="float32")
    with rasterio.open(spec.labels) as ds:
        labels = ids_to_indices(ds.read(1), config.scheme)
    train_boxes, val_box, test_box = split_boxes(*labels.shape, config.validation, config.test)
    scored = test_box or val_box                    # the block the model's own numbers come from
    train_mask = np.zeros(labels.shape, bool)
    for box in train_boxes:                         # the model's training pixels, no more
        train_mask[box.row0:box.row1, box.col0:box.col1] = True
    train_labels = labels[train_mask]
    val_labels = labels[scored.row0:scored.row1, scored.col0:scored.col1].ravel()
    n = len(names)
    scores: dict[str, Scores] = {}

    def score(predicted: np.ndarray) -> Scores:
        matrix = ConfusionMatrix(n)
        matrix.update(val_labels, predicted)
        return matrix.scores(names)

    counts = np.bincount(train_labels[train_labels != IGNORE_INDEX], minlength=n)
    majority = int(np.argmax(counts))
    scores[f"majority class of the training rows ({names[majority]})"] = score(np.full_like(val_labels, majority))
    val_counts = np.bincount(val_labels[val_labels != IGNORE_INDEX], minlength=n)
    oracle = int(np.argmax(val_counts))
    scores[f"majority class of the scored block ({names[oracle]}; oracle)"] = score(np.full_like(val_labels, oracle))

    x_train = pixel_features(image, config.band_names)[train_mask.ravel()]
    labelled = np.flatnonzero(train_labels != IGNORE_INDEX)
    rng = np.random.default_rng(0)
    pick = rng.choice(labelled, min(RF_SAMPLES, labelled.size), replace=False)
    t0 = time.perf_counter()
    forest = new_forest(seed=0, trees=200)
    forest.fit(x_train[pick], train_labels[pick])
    block = image[:, scored.row0:scored.row1, scored.col0:scored.col1]
    predicted = forest.predict(pixel_features(block, config.band_names)).astype(np.uint8)
    elapsed = time.perf_counter() - t0
    scores[f"RandomForest, 200 trees, bands + NDVI + NDWI, {pick.size // 1000}k training pixels ({elapsed:.0f} s)"] = score(predicted)
    return scores


def table(rows: dict[str, Scores]) -> str:
    lines = ["| method | mIoU | OA | fwIoU | mean F1 |", "|---|---|---|---|---|"]
    for name, s in rows.items():
        lines.append(f"| {name} | {s.mean_iou:.3f} | {s.overall_accuracy:.3f} | {s.frequency_weighted_iou:.3f} | "
                     f"{s.mean_dice:.3f} |")
    return "\n".join(lines)


def per_class_table(rows: dict[str, Scores]) -> str:
    names = [c.name for c in next(iter(rows.values())).per_class]
    lines = ["| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, s in rows.items():
        cells = ["–" if np.isnan(c.iou) else f"{c.iou:.2f}" for c in s.per_class]
        lines.append(f"| {name.split(',')[0].split(' (')[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def install(bundle: Path) -> None:
    """Copy the bundle to the package, its test-block metrics saying which shipped file that block is."""
    model = load_bundle(bundle)
    metrics = dict(model.meta.metrics)
    metrics["evaluated_on"] = [f"{where}, shipped as sample_tiles/zion_landsat8_b2345.tif"
                               for where in metrics.get("evaluated_on", [])]
    DEFAULT_MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    ModelBundle(model.meta.model_copy(update={"metrics": metrics}), model.state_dict).save(
        DEFAULT_MODEL_PATH, overwrite=True, half=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--skip-train", action="store_true", help="evaluate --bundle instead of training")
    parser.add_argument("--bundle", type=Path, help="the bundle to evaluate with --skip-train")
    parser.add_argument("--install", action="store_true", help=f"copy the model to {DEFAULT_MODEL_PATH.relative_to(ROOT)}")
    args = parser.parse_args()

    config = load_config(args.config)
    if args.skip_train:
        bundle = args.bundle or Path(config.output_dir) / f"{config.name}.safetensors"
        train_seconds = None
    else:
        t0 = time.perf_counter()
        result = train(config, overwrite=True, reporter=make_reporter("rich", "train"),
                       on_epoch=lambda row: print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f} "
                                                  f"val mIoU {row['val_mean_iou']:.4f} OA {row['val_overall_accuracy']:.4f}"
                                                  f"{' best' if row['best'] else ''}", flush=True))
        bundle, train_seconds = result.bundle, time.perf_counter() - t0
        print(f"trained in {train_seconds / 60:.1f} min -> {bundle}")

    out = Path(config.output_dir) / "baselines"
    scene = ROOT / "sample_tiles" / "zion_landsat8_b2345.tif"
    labels = ROOT / "sample_tiles" / "zion_nlcd8.tif"
    names = [c.name for c in config.classes]
    rows: dict[str, Scores] = {}
    rows[f"geoseg default model ({config.model.architecture}, `geoseg evaluate`)"] = evaluate(
        bundle, scene, labels, out / "model", overwrite=True).scores
    legend = config.scheme
    rows["NDWI-Otsu: water above, forest below"] = evaluate("ndwi-otsu", scene, labels, out / "ndwi-otsu",
                                                            method_classes=(1, 4), legend=legend, overwrite=True).scores
    rows["NDVI-Otsu: forest above, shrubland below"] = evaluate("ndvi-otsu", scene, labels, out / "ndvi-otsu",
                                                                method_classes=(4, 5), legend=legend,
                                                                overwrite=True).scores
    rows.update(in_memory_baselines(args.config, names))
    text = (table(rows) + "\n\nPer-class IoU:\n\n" + per_class_table(rows) + "\n")
    if train_seconds is not None:
        text += f"\nTraining time: {train_seconds / 60:.1f} min.\n"
    (Path(config.output_dir) / "baselines.md").write_text(text)
    print(text)
    if args.install:
        install(bundle)
        print(f"installed {DEFAULT_MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
