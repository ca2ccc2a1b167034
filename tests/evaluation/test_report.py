"""The evaluation report: portable (no absolute paths) and honest about undefined scores."""
from __future__ import annotations

import numpy as np

from geoseg.evaluation.evaluate import markdown_report
from geoseg.evaluation.metrics import scores_from_matrix

INFO = {"model": "m", "model_file": "m.safetensors", "scene": "scene.tif", "labels": "labels.tif",
        "labelled_pixels_without_prediction": 0}


def test_footnote_names_the_classes_whose_scores_are_undefined() -> None:
    # water: reference and predictions; wetlands: reference pixels, never predicted; snow: in neither
    matrix = np.array([[5, 2, 0], [3, 0, 0], [0, 0, 0]])
    scores = scores_from_matrix(matrix, ["water", "wetlands", "snow"])
    report = markdown_report(scores, INFO)
    assert "| wetlands | 3 | 2 | 0.000 | 0.000 | 0.000 | 0.000 |" in report    # predicted (as water) 2 px
    scores = scores_from_matrix(np.array([[5, 0, 0], [3, 0, 0], [0, 0, 0]]), ["water", "wetlands", "snow"])
    report = markdown_report(scores, INFO)
    assert "| wetlands | 3 | 0 | 0.000 | 0.000 | – | 0.000 |" in report
    note = next(line for line in report.splitlines() if line.startswith("– marks"))
    assert "never predicted (wetlands, snow)" in note
    assert "without reference pixels (snow)" in note and "absent from both (snow)" in note
    assert "# Evaluation of m (`m.safetensors`)" in report
