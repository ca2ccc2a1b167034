"""Train Mask R-CNN on the SpaceNet chip and score it against a threshold + connected-components baseline.

    python scripts/spacenet_instances.py                    # train (configs/spacenet_buildings.yaml), then score
    python scripts/spacenet_instances.py --bundle runs/spacenet_buildings/spacenet_buildings.safetensors

Needs ../shared/data/spacenet_buildings (developers only: the chip may not ship). Both methods are scored on
the config's test block (columns 608-899, untouched by training and by model selection) with the same
one-to-one matching at IoU >= 0.5 (geoseg.training.instances.match_objects). The baseline's threshold,
opening and minimum area are tuned on the columns the model may use (0-591: training and validation), so
neither method sees the test block before it is scored. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoseg.model.instance_net import load_instance_detector  # noqa: E402
from geoseg.model.normalise import Normaliser  # noqa: E402
from geoseg.training import load_config, train  # noqa: E402
from geoseg.model.loading import read_meta  # noqa: E402
from geoseg.training.instances import (ObjectScores, detect_block, load_object_scene, match_objects,  # noqa: E402
                                       scoring_at_least)

CONFIG = ROOT / "configs" / "spacenet_buildings.yaml"


def components(image: np.ndarray, threshold: float, bright: bool, opening: int, min_area: int) -> np.ndarray:
    """Objects as connected regions brighter (or darker) than ``threshold``: an opening of ``opening`` px,
    holes filled, regions under ``min_area`` px dropped."""
    mask = image >= threshold if bright else image <= threshold
    if opening:
        mask = ndimage.binary_opening(mask, ndimage.generate_binary_structure(2, 1), iterations=opening)
    mask = ndimage.binary_fill_holes(mask)
    ids, _ = ndimage.label(mask)
    areas = np.bincount(ids.ravel())
    areas[0] = 0
    keep = areas >= min_area
    keep[0] = False
    relabel = np.where(keep, np.cumsum(keep), 0)
    return relabel[ids].astype(np.int32)


def tune_baseline(image: np.ndarray, reference: np.ndarray) -> tuple[dict, ObjectScores]:
    """The threshold (a percentile of the tuning pixels, objects brighter or darker), opening and minimum area
    with the best F1 there."""
    best: tuple[float, dict, ObjectScores] | None = None
    for percentile, opening, min_area in itertools.product(range(2, 99, 4), (0, 1, 2), (50, 100, 200, 400)):
        threshold = float(np.percentile(image, percentile))
        for bright in (True, False):
            scores = match_objects(reference, components(image, threshold, bright, opening, min_area))
            f1 = 0.0 if np.isnan(scores.f1) else scores.f1
            if best is None or f1 > best[0]:
                best = (f1, {"percentile": percentile, "threshold": threshold, "bright": bright, "opening": opening,
                             "min_area": min_area}, scores)
    assert best is not None
    return best[1], best[2]


def row(name: str, scores: ObjectScores, note: str) -> str:
    return (f"| {name} | {scores.f1:.3f} | {scores.precision:.3f} | {scores.recall:.3f} | {scores.true_positives} | "
            f"{scores.false_positives} | {scores.false_negatives} | {note} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--bundle", type=Path, help="score this bundle instead of training one")
    parser.add_argument("--score-threshold", type=float, action="append", default=[],
                        help="also score the model at this threshold (repeatable; the bundle's is always scored)")
    args = parser.parse_args()
    config = load_config(args.config, require_data=True)
    bundle = args.bundle
    if bundle is None:
        t0 = time.perf_counter()
        result = train(config, overwrite=True)
        print(f"trained in {time.perf_counter() - t0:.0f} s (best epoch {result.best_epoch} of {result.epochs_run})")
        bundle = result.bundle
    scene = load_object_scene(config.scenes[0], config)
    test, tuning = scene.test_box, (slice(None), slice(0, scene.val_box.col1))
    assert test is not None, "the config needs a test block"
    meta = read_meta(bundle)
    thresholds = [meta.score_threshold, *args.score_threshold]
    detector = load_instance_detector(bundle, score_threshold=min(thresholds))
    normalised = Normaliser(meta)(scene.image, scene.valid)[:, test.row0:test.row1, test.col0:test.col1]
    t0 = time.perf_counter()
    ids, found = detect_block(detector, normalised)
    seconds = time.perf_counter() - t0
    models = [(t, match_objects(scene.labels[test.slices], scoring_at_least(ids, found, t))) for t in thresholds]
    pan = scene.image[0]
    settings, tuned = tune_baseline(pan[tuning], scene.labels[tuning])
    baseline = match_objects(scene.labels[test.slices],
                             components(pan[test.slices], settings["threshold"], settings["bright"],
                                        settings["opening"], settings["min_area"]))
    objects = baseline.true_positives + baseline.false_negatives
    print(f"test block: {test.height}x{test.width} px (cols {test.col0}..{test.col1}), {objects} reference objects "
          "(buildings cut by the block edge count as their visible part)")
    print("| method | F1@0.5 | precision | recall | TP | FP | FN | notes |\n|---|---|---|---|---|---|---|---|")
    for threshold, model in models:
        print(row(f"Mask R-CNN (geoseg train), score >= {threshold}", model,
                  f"{bundle.name}, detection {seconds:.1f} s on the CPU"))
    print(row("threshold + connected components", baseline,
              f"pan {'>=' if settings['bright'] else '<='} p{settings['percentile']} ({settings['threshold']:.0f} DN), "
              f"opening {settings['opening']}, "
              f"min {settings['min_area']} px; tuned on cols 0-{scene.val_box.col1 - 1} (F1 {tuned.f1:.3f} there)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
