"""Object (instance) scores: one-to-one matching at IoU >= 0.5 (the SpaceNet rule) and COCO's AP.

Objects are polygons in one CRS; their IoU is exact polygon overlap (shapely), so it equals the mask IoU
COCO computes wherever polygons follow pixel edges, as geoseg's do.

- **F1@0.5** (SpaceNet): a prediction and a reference object match when their IoU is at least 0.5; each
  object matches at most once (pairs taken by decreasing IoU; above 0.5 a match is unique anyway between
  non-overlapping footprints). Precision = matches / predictions, recall = matches / references.
- **AP** (COCO, ``pycocotools.cocoeval`` semantics, one image): predictions by decreasing score each take
  the best still unmatched reference at IoU >= t; precision is made monotone and read at 101 recall
  points; AP50 is t = 0.5, AP the mean over t = 0.50, 0.55, ... 0.95. No limit on detections per image (a
  scene holds thousands of buildings; COCO's default keeps 100).
- **Sizes**: small < 32², medium < 96² px, large above (COCO's ranges, in scene pixels). A size's AP
  ignores references of other sizes, and predictions of other sizes that match nothing, as COCO does.
- **Classes**: scores are computed per class and averaged (COCO's mean over categories); a
  class-agnostic evaluation passes one class for all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
#: COCO's object sizes in px²: (name, smallest, largest).
SIZES = (("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2), ("large", 96.0 ** 2, 1e10))
ALL = ("all", 0.0, 1e10)


def iou_matrix(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(n_pred, n_ref) IoU of two arrays of polygons (only intersecting pairs are computed)."""
    out = np.zeros((len(predicted), len(reference)))
    if not len(predicted) or not len(reference):
        return out
    tree = shapely.STRtree(reference)
    pi, ri = tree.query(predicted, predicate="intersects")
    if len(pi):
        inter = shapely.area(shapely.intersection(predicted[pi], reference[ri]))
        union = shapely.area(predicted[pi]) + shapely.area(reference[ri]) - inter
        out[pi, ri] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


def one_to_one(ious: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(prediction, reference) pairs at IoU >= ``threshold``, each object used once, best IoU first."""
    pi, ri = np.nonzero(ious >= threshold)
    order = np.argsort(-ious[pi, ri], kind="stable")
    used_p: set[int] = set()
    used_r: set[int] = set()
    pairs = []
    for k in order:
        p, r = int(pi[k]), int(ri[k])
        if p not in used_p and r not in used_r:
            used_p.add(p)
            used_r.add(r)
            pairs.append((p, r))
    return pairs


@dataclass
class _Matches:
    """COCO's per-image result for one class and size range: what each prediction matched, at each t."""

    scores: np.ndarray          # (D,) sorted decreasing
    matched: np.ndarray         # (T, D) bool
    ignored: np.ndarray         # (T, D) bool
    references: int             # references of this size range


def _coco_match(ious: np.ndarray, scores: np.ndarray, ref_areas: np.ndarray, pred_areas: np.ndarray,
                size: tuple[str, float, float]) -> _Matches:
    """``COCOeval.evaluateImg`` for one image and class: greedy by score, references of the size first."""
    _, low, high = size
    ref_ignored = (ref_areas < low) | (ref_areas > high)
    ref_order = np.argsort(ref_ignored, kind="mergesort")
    ref_ignored = ref_ignored[ref_order]
    pred_order = np.argsort(-scores, kind="mergesort")
    ious = ious[pred_order][:, ref_order]
    n_t, n_p, n_r = len(IOU_THRESHOLDS), len(pred_order), len(ref_order)
    matched = np.zeros((n_t, n_p), bool)
    ignored = np.zeros((n_t, n_p), bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(n_r, bool)
        for d in range(n_p):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(n_r):
                if taken[g]:
                    continue
                if m > -1 and not ref_ignored[m] and ref_ignored[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            taken[m] = True
            matched[t, d] = True
            ignored[t, d] = ref_ignored[m]
    outside = (pred_areas[pred_order] < low) | (pred_areas[pred_order] > high)
    ignored |= ~matched & outside[None, :]
    return _Matches(scores[pred_order], matched, ignored, int((~ref_ignored).sum()))


def _average_precision(m: _Matches) -> np.ndarray:
    """COCO's accumulate: AP (T,) at each IoU threshold; NaN where there is no reference."""
    if m.references == 0:
        return np.full(len(IOU_THRESHOLDS), np.nan)
    out = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        keep = ~m.ignored[t]
        tp = np.cumsum(m.matched[t][keep]).astype(float)
        fp = np.cumsum(~m.matched[t][keep]).astype(float)
        recall = tp / m.references
        precision = tp / (tp + fp + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        at = np.searchsorted(recall, RECALL_POINTS, side="left")
        q = np.zeros(len(RECALL_POINTS))
        valid = at < len(precision)
        q[valid] = precision[at[valid]]
        out[t] = q.mean()
    return out


@dataclass
class ObjectScores:
    """Headline object scores (F1 family at IoU 0.5, COCO AP) and their per-size breakdown."""

    predictions: int
    references: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    ap50: float
    ap75: float
    ap: float
    per_size: dict[str, dict[str, float]]
    matches: list[tuple[int, int]]

    def summary(self) -> dict[str, float]:
        """The headline scores, as the CLI's metrics event carries them."""
        return {"f1": self.f1, "ap50": self.ap50, "ap": self.ap}

    def to_json_dict(self) -> dict[str, object]:
        def clean(v: float) -> float | None:
            return None if v is None or np.isnan(v) else round(float(v), 6)

        return {"predictions": self.predictions, "references": self.references,
                "true_positives": self.true_positives, "false_positives": self.predictions - self.true_positives,
                "false_negatives": self.references - self.true_positives, "precision": clean(self.precision),
                "recall": clean(self.recall), "f1": clean(self.f1), "ap50": clean(self.ap50),
                "ap75": clean(self.ap75), "ap": clean(self.ap),
                "per_size": {k: {n: (clean(v) if isinstance(v, float) else v) for n, v in d.items()}
                             for k, d in self.per_size.items()}}


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def score_objects(predicted: np.ndarray, scores: np.ndarray, reference: np.ndarray, pixel_area: float,
                  predicted_classes: np.ndarray | None = None, reference_classes: np.ndarray | None = None
                  ) -> ObjectScores:
    """Score predicted polygons (with ``scores``) against reference polygons, both in one CRS.

    ``pixel_area`` (map units² per scene pixel) puts areas in pixels for COCO's size ranges. Without classes
    every object is of one class.
    """
    pc = np.zeros(len(predicted), int) if predicted_classes is None else np.asarray(predicted_classes)
    rc = np.zeros(len(reference), int) if reference_classes is None else np.asarray(reference_classes)
    ious = iou_matrix(predicted, reference)
    pred_areas = shapely.area(predicted) / pixel_area if len(predicted) else np.zeros(0)
    ref_areas = shapely.area(reference) / pixel_area if len(reference) else np.zeros(0)
    matches: list[tuple[int, int]] = []
    aps: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in (ALL, *SIZES)}
    size_counts: dict[str, list[int]] = {name: [0, 0, 0] for name, _, _ in SIZES}
    for cls in np.union1d(np.unique(pc), np.unique(rc)):
        p, r = np.flatnonzero(pc == cls), np.flatnonzero(rc == cls)
        sub = ious[np.ix_(p, r)]
        matches += [(int(p[a]), int(r[b])) for a, b in one_to_one(sub)]
        for size in (ALL, *SIZES):
            aps[size[0]].append(_average_precision(_coco_match(sub, scores[p], ref_areas[r], pred_areas[p], size)))
    for name, low, high in SIZES:
        in_size = (ref_areas >= low) & (ref_areas < high)
        found = {b for _, b in matches}
        size_counts[name] = [int(in_size.sum()), sum(1 for b in np.flatnonzero(in_size) if b in found), 0]
        size_counts[name][2] = int(((pred_areas >= low) & (pred_areas < high)).sum())
    mean = {name: _class_mean(values) for name, values in aps.items()}
    tp = len(matches)
    precision, recall = _ratio(tp, len(predicted)), _ratio(tp, len(reference))
    f1 = _ratio(2 * tp, len(predicted) + len(reference))
    per_size = {name: {"references": size_counts[name][0], "found": size_counts[name][1],
                       "predictions": size_counts[name][2],
                       "recall": _ratio(size_counts[name][1], size_counts[name][0]),
                       "ap50": float(mean[name][0]), "ap": float(np.nanmean(mean[name]))
                       if not np.all(np.isnan(mean[name])) else float("nan")}
                for name, _, _ in SIZES}
    overall = mean["all"]
    return ObjectScores(len(predicted), len(reference), tp, precision, recall, f1, float(overall[0]),
                        float(overall[5]), float(np.mean(overall)) if not np.any(np.isnan(overall)) else float("nan"),
                        per_size, sorted(matches))


def _class_mean(per_class: list[np.ndarray]) -> np.ndarray:
    """Mean over classes with references (COCO leaves classes without any out), per IoU threshold."""
    stacked = np.array(per_class) if per_class else np.full((1, len(IOU_THRESHOLDS)), np.nan)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(stacked)
        counts = valid.sum(axis=0)
        return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
