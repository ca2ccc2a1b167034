"""The RandomForest beside every trained model: fitted on the model's own training pixels and scored on the
same held-out pixels, so the training report shows what the network gained over the analyst's usual tool.

It runs before the scenes are normalised (the forest's NDVI and NDWI need the raw values) and keeps only
its predicted class indices of the held-out blocks, so it adds no scene-sized memory; it learns from at
most :data:`~geoseg.evaluation.forest.FOREST_PIXELS` training pixels, so its time stays bounded.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.evaluation.forest import FOREST_PIXELS, TREES, feature_names, new_forest, pixel_features
from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, Scores
from geoseg.io.outputs import atomic_output
from geoseg.training.data import Box, SceneData, training_pixels

#: Rows of a held-out block classified at once (memory: rows x width x features of float32).
PREDICT_ROWS = 256


@dataclass
class ForestScores:
    """The forest's scores on the validation and test blocks (None without a test block) and how it was made."""

    validation: Scores
    test: Scores | None
    training_pixels: int
    features: list[str]
    seconds: float

    def record(self, scores: Scores) -> dict[str, Any]:
        """What a bundle's metrics record of the forest's ``scores`` (one block's)."""
        return {**{k: round(v, 6) for k, v in scores.summary().items()},
                "per_class_iou": {c.name: (None if math.isnan(c.iou) else round(c.iou, 6)) for c in scores.per_class},
                "training_pixels": self.training_pixels, "trees": TREES, "features": self.features,
                "seconds": round(self.seconds, 1)}


def forest_baseline(scenes: list[SceneData], band_names: list[str], class_names: list[str], seed: int = 0
                    ) -> ForestScores:
    """Fit a RandomForest on up to FOREST_PIXELS labelled training pixels of ``scenes`` (raw values, drawn
    uniformly) and score it on every scene's validation block and test block."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    pools = []
    for scene in scenes:
        labelled = training_pixels(scene) & scene.valid & (scene.labels != IGNORE_INDEX)
        pools.append(np.flatnonzero(labelled))
    total = sum(p.size for p in pools)
    share = min(1.0, FOREST_PIXELS / max(total, 1))
    features, targets = [], []
    for scene, pool in zip(scenes, pools):
        picked = pool[rng.random(pool.size) < share]
        rows, cols = np.unravel_index(picked, scene.labels.shape)
        features.append(pixel_features(scene.image[:, rows, cols][:, None, :], band_names))
        targets.append(scene.labels[rows, cols])
    forest = new_forest(seed)
    forest.fit(np.concatenate(features), np.concatenate(targets))
    n = len(class_names)
    validation, test = ConfusionMatrix(n), ConfusionMatrix(n)
    for scene in scenes:
        _score(forest, scene, scene.val_box, band_names, validation)
        if scene.test_box is not None:
            _score(forest, scene, scene.test_box, band_names, test)
    has_test = any(scene.test_box is not None for scene in scenes)
    return ForestScores(validation.scores(class_names), test.scores(class_names) if has_test else None,
                        int(sum(t.size for t in targets)), feature_names(band_names), time.perf_counter() - t0)


def _score(forest: Any, scene: SceneData, box: Box, band_names: list[str], matrix: ConfusionMatrix) -> None:
    """Add the forest's predictions of the labelled, valid pixels of ``box`` to ``matrix``, in row blocks."""
    for top in range(box.row0, box.row1, PREDICT_ROWS):
        rows, cols = slice(top, min(top + PREDICT_ROWS, box.row1)), slice(box.col0, box.col1)
        labels = scene.labels[rows, cols].ravel()
        scored = (labels != IGNORE_INDEX) & scene.valid[rows, cols].ravel()
        if scored.any():
            predicted = forest.predict(pixel_features(scene.image[:, rows, cols], band_names)[scored])
            matrix.update(labels[scored], predicted.astype(np.uint8))


def write_comparison(path: Path, rows: dict[str, Scores], block: str, forest: ForestScores) -> None:
    """``comparison.md``: the model and the RandomForest on the same pixels, headline and per-class IoU."""
    def fmt(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    names = [c.name for c in next(iter(rows.values())).per_class]
    lines = [f"# The model and a RandomForest on the same {block} pixels", "",
             f"The RandomForest ({TREES} trees; features: {', '.join(forest.features)}) learnt from "
             f"{forest.training_pixels} of the model's training pixels in {forest.seconds:.0f} s.", "",
             "| method | overall accuracy | mean IoU | frequency-weighted IoU | mean F1 |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {fmt(s.overall_accuracy)} | {fmt(s.mean_iou)} | {fmt(s.frequency_weighted_iou)} | "
              f"{fmt(s.mean_dice)} |" for name, s in rows.items()]
    lines += ["", "Per-class IoU:", "", "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join(fmt(c.iou) for c in s.per_class) + " |" for name, s in rows.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
