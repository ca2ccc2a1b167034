"""Metrics against confusion matrices worked out by hand, including absent classes and ignored pixels."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, scores_from_matrix


def test_confusion_matrix_counts_pairs_and_skips_ignored_and_masked() -> None:
    target = np.array([[0, 0, 1], [1, 2, IGNORE_INDEX]])
    predicted = np.array([[0, 1, 1], [1, 0, 2]])
    valid = np.array([[True, True, True], [False, True, True]])
    cm = ConfusionMatrix(3)
    cm.update(target, predicted, valid)
    # pairs kept: (0,0) (0,1) (1,1) (2,0); (1,1) at [1,0] masked, [1,2] ignored
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_accumulating_tiles_equals_one_pass() -> None:
    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, (40, 30))
    predicted = rng.integers(0, 4, (40, 30))
    whole = ConfusionMatrix(4)
    whole.update(target, predicted)
    tiled = ConfusionMatrix(4)
    for rows in (slice(0, 13), slice(13, 40)):
        for cols in (slice(0, 7), slice(7, 30)):
            part = ConfusionMatrix(4)
            part.update(target[rows, cols], predicted[rows, cols])
            tiled += part
    assert np.array_equal(whole.matrix, tiled.matrix)


def test_scores_match_hand_computation() -> None:
    # rows: reference, columns: prediction
    m = np.array([[50, 10, 0],
                  [5, 30, 0],
                  [0, 0, 0]])   # class c: absent from reference and prediction
    s = scores_from_matrix(m, ["a", "b", "c"])
    # a: tp 50, fn 10, fp 5 -> IoU 50/65, dice 100/115, precision 50/55, recall 50/60
    # b: tp 30, fn 5, fp 10 -> IoU 30/45, dice 60/75, precision 30/40, recall 30/35
    a, b, c = s.per_class
    assert a.iou == pytest.approx(50 / 65) and b.iou == pytest.approx(30 / 45)
    assert a.dice == pytest.approx(100 / 115) and b.dice == pytest.approx(60 / 75)
    assert a.precision == pytest.approx(50 / 55) and a.recall == pytest.approx(50 / 60)
    assert b.precision == pytest.approx(30 / 40) and b.recall == pytest.approx(30 / 35)
    assert all(math.isnan(v) for v in (c.iou, c.dice, c.precision, c.recall))
    assert s.overall_accuracy == pytest.approx(80 / 95)
    assert s.mean_iou == pytest.approx((50 / 65 + 30 / 45) / 2)          # NaN class left out
    assert s.frequency_weighted_iou == pytest.approx(60 / 95 * 50 / 65 + 35 / 95 * 30 / 45)
    assert s.mean_dice == pytest.approx((100 / 115 + 60 / 75) / 2)
    assert s.pixels == 95


def test_class_predicted_but_absent_from_reference_counts_as_zero_iou() -> None:
    m = np.array([[8, 2],
                  [0, 0]])      # class 1 never in the reference but predicted twice
    s = scores_from_matrix(m)
    assert s.per_class[1].iou == 0.0
    assert s.per_class[1].precision == 0.0
    assert math.isnan(s.per_class[1].recall)
    assert s.mean_iou == pytest.approx((8 / 10 + 0) / 2)


def test_json_has_no_nan() -> None:
    s = scores_from_matrix(np.array([[3, 0], [0, 0]]))
    text = json.dumps(s.to_json_dict(), allow_nan=False)
    assert json.loads(text)["per_class"][1]["iou"] is None


def test_out_of_scheme_prediction_is_an_error() -> None:
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(np.array([0, 1]), np.array([0, 5]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=200))
def test_perfect_prediction_scores_one_and_oa_bounds(pairs: list[tuple[int, int]]) -> None:
    target = np.array([t for t, _ in pairs])
    predicted = np.array([p for _, p in pairs])
    cm = ConfusionMatrix(4)
    cm.update(target, predicted)
    s = cm.scores()
    assert 0.0 <= s.overall_accuracy <= 1.0
    assert s.overall_accuracy == pytest.approx(float(np.mean(target == predicted)))
    perfect = ConfusionMatrix(4)
    perfect.update(target, target)
    assert perfect.scores().mean_iou == pytest.approx(1.0)
