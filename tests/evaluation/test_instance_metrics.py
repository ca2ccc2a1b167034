"""Object scores against hand counts and against COCO's own evaluation code (pycocotools)."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from geoseg.evaluation.instance_metrics import iou_matrix, one_to_one, score_objects

pycocotools = pytest.importorskip("pycocotools", reason="pip install pycocotools (in the dev extra)")


def boxes(rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.array([shapely.box(x, y, x + w, y + h) for x, y, w, h in rects], dtype=object)


def test_spacenet_rule_by_hand() -> None:
    """3 references; one prediction overlaps well (IoU 0.8), one poorly (0.25), one is false: F1 = 2/6."""
    reference = boxes([(0, 0, 10, 10), (20, 0, 10, 10), (40, 0, 10, 10)])
    predicted = boxes([(0, 0, 10, 8), (20, 0, 10, 4), (60, 60, 5, 5)])
    ious = iou_matrix(predicted, reference)
    assert ious[0, 0] == pytest.approx(0.8) and ious[1, 1] == pytest.approx(0.4)
    assert one_to_one(ious) == [(0, 0)]
    s = score_objects(predicted, np.array([0.9, 0.8, 0.7]), reference, 1.0)
    assert (s.true_positives, s.precision, s.recall) == (1, pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert s.f1 == pytest.approx(1 / 3)


def test_each_object_matches_once() -> None:
    reference = boxes([(0, 0, 10, 10)])
    predicted = boxes([(0, 0, 10, 10), (0, 0, 10, 9)])
    s = score_objects(predicted, np.array([0.5, 0.9]), reference, 1.0)
    assert s.true_positives == 1 and s.matches == [(0, 0)]      # the better IoU wins, not the better score
    assert s.ap50 == pytest.approx(1.0)                          # COCO: by score, the 0.9 one matches first


def _layout(seed: int) -> tuple[list, list, np.ndarray]:
    """Reference rectangles of all three COCO sizes on a 600 px canvas, and noisy predictions of them."""
    rng = np.random.default_rng(seed)
    refs, preds = [], []
    for _ in range(40):
        side = int(rng.choice([rng.integers(4, 30), rng.integers(33, 90), rng.integers(100, 140)]))
        w, h = side, max(3, int(side * rng.uniform(0.6, 1.0)))
        x, y = int(rng.integers(0, 600 - w)), int(rng.integers(0, 600 - h))
        refs.append((x, y, w, h))
        if rng.random() < 0.8:      # found, more or less exactly
            dx, dy = (int(v) for v in rng.integers(-w // 3, w // 3 + 1, 2))
            preds.append((max(0, x + dx), max(0, y + dy), max(1, w + int(rng.integers(-w // 4, w // 4 + 1))), h))
    for _ in range(12):             # false positives
        w, h = (int(v) for v in rng.integers(3, 120, 2))
        preds.append((int(rng.integers(0, 600 - w)), int(rng.integers(0, 600 - h)), w, h))
    return refs, preds, rng.uniform(0.05, 1.0, len(preds)).round(4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_equals_pycocotools(seed: int) -> None:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    refs, preds, scores = _layout(seed)

    def rle(x: int, y: int, w: int, h: int) -> dict:
        m = np.zeros((600, 600), np.uint8, order="F")
        m[y:y + h, x:x + w] = 1
        encoded = mask_utils.encode(m)
        encoded["counts"] = encoded["counts"].decode()
        return encoded

    gt = COCO()
    gt.dataset = {"images": [{"id": 1, "width": 600, "height": 600}], "categories": [{"id": 1, "name": "b"}],
                  "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": float(w * h),
                                   "bbox": [x, y, w, h], "segmentation": rle(x, y, w, h)}
                                  for i, (x, y, w, h) in enumerate(refs)]}
    gt.createIndex()
    dt = gt.loadRes([{"image_id": 1, "category_id": 1, "score": float(s), "segmentation": rle(*p)}
                     for p, s in zip(preds, scores)])
    ev = COCOeval(gt, dt, "segm")
    ev.params.maxDets = [1, 10, 10_000]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][:, :, 0, :, 2]           # (T, R, area)

    def coco(area: int, t: int | None = None) -> float:
        p = precision[:, :, area] if t is None else precision[t, :, area]
        return float(p[p > -1].mean()) if (p > -1).any() else float("nan")

    ours = score_objects(boxes(preds), scores, boxes(refs), 1.0)
    assert ours.ap50 == pytest.approx(coco(0, 0), abs=1e-9)
    assert ours.ap75 == pytest.approx(coco(0, 5), abs=1e-9)
    assert ours.ap == pytest.approx(coco(0), abs=1e-9)
    for k, size in enumerate(("small", "medium", "large"), start=1):
        assert ours.per_size[size]["ap"] == pytest.approx(coco(k), abs=1e-9, nan_ok=True), size
        assert ours.per_size[size]["ap50"] == pytest.approx(coco(k, 0), abs=1e-9, nan_ok=True), size
