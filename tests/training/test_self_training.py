"""Self-training: confident predictions become labels, never on what validation scores, and a resumed run
trains on the same pseudo-labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.inference.device import plan_execution
from geoseg.model.loading import read_meta
from geoseg.training import load_config, train
from geoseg.training.data import Box, SceneData
from geoseg.training.pseudo import predict_confident, pseudo_labels
from tests.conftest import ZION, tiny_config
from tests.training.test_splits import _polygons

I = IGNORE_INDEX


class _Fixed(torch.nn.Module):
    """Logits taken from the first two input channels: class 1 where channel 1 is larger."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2]


def test_predict_confident_returns_the_softmax_of_the_chosen_class() -> None:
    image = np.zeros((2, 70, 90), np.float32)
    image[1, :, 45:] = 4.0                                  # right half: class 1 with p = 1 / (1 + e^-4)
    classes, confidence = predict_confident(_Fixed(), image, 1, plan_execution("cpu"), tile=32, halo=8)
    assert (classes[:, :45] == 0).all() and (classes[:, 45:] == 1).all()
    np.testing.assert_allclose(confidence[:, :45], 0.5, atol=1e-6)            # a tie: both 0.5
    np.testing.assert_allclose(confidence[:, 45:], 1 / (1 + np.exp(-4.0)), rtol=1e-6)


def _scene(labels: np.ndarray, val_labels: np.ndarray | None = None, train_boxes: list[Box] | None = None
           ) -> SceneData:
    height, width = labels.shape
    return SceneData(Path("scene.tif"), np.zeros((1, height, width), np.float32), labels, np.ones_like(labels, bool),
                     train_boxes or [Box(0, height, 0, width)], Box(0, height, 0, width), val_labels=val_labels)


def test_pseudo_labels_keep_the_given_labels_and_leave_held_out_polygons_alone() -> None:
    labels = np.full((20, 20), I, np.uint8)
    labels[2:4, 2:4] = 1                                    # an analyst's polygon
    held = np.full((20, 20), I, np.uint8)
    held[10:12, 10:12] = 2                                  # a held-out polygon
    classes = np.zeros((20, 20), np.uint8)
    confidence = np.full((20, 20), 0.95, np.float32)
    confidence[:, 18:] = 0.6                                # not confident enough
    scene = _scene(labels, held)
    scene.valid[0, :] = False
    out = pseudo_labels(scene, classes, confidence, 0.9, buffer=2)
    assert (out[2:4, 2:4] == 1).all()                       # given labels win over predictions
    assert (out[8:14, 8:14] == I).all()                     # the held-out polygon and 2 px around it
    assert out[7, 7] == 0 and out[14, 14] == 0
    assert (out[:, 18:] == I).all() and (out[0] == I).all() # unsure and invalid pixels stay unlabelled
    assert np.count_nonzero(out == 0) == 400 - 4 - 36 - 40 - 18
    # a block split: only inside the training boxes
    block = _scene(np.full((20, 20), I, np.uint8), train_boxes=[Box(0, 10, 0, 20)])
    out = pseudo_labels(block, classes, np.ones((20, 20), np.float32), 0.9, buffer=0)
    assert (out[:10] == 0).all() and (out[10:] == I).all()


@pytest.mark.slow
def test_training_adds_pseudo_labels_and_a_resume_reuses_them(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, ZION, _polygons(tmp_path, 4), validation={"polygons": 0.25},
                         train={"epochs": 4, "iterations_per_epoch": 3, "batch_size": 4, "window": 32, "seed": 0,
                                "threads": 1, "self_training": {"start": 0.5, "confidence": 0.6}})
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump(config))
    result = train(load_config(path))
    training = read_meta(result.bundle).provenance["training"]
    added = training["pseudo_labelled_pixels"]
    assert added > 10 * 4 * 144                             # far more pixels than the 8 polygons hold
    saved = np.load(tmp_path / "run" / "checkpoint" / "pseudo_labels_0.npy", allow_pickle=False)
    assert np.count_nonzero(saved != IGNORE_INDEX) >= added
    first = json.loads((tmp_path / "run" / "log.json").read_text())
    # the same run cut after epoch 3 (pseudo-labels made after epoch 2), then resumed: same log, same labels
    again = tmp_path / "again"
    config.update(output_dir=str(again))
    config["train"]["epochs"] = 3
    path.write_text(yaml.safe_dump(config))
    train(load_config(path))
    assert (np.load(again / "checkpoint" / "pseudo_labels_0.npy", allow_pickle=False) == saved).all()
    config["train"]["epochs"] = 4
    path.write_text(yaml.safe_dump(config))
    resumed = train(load_config(path), resume=True)
    assert read_meta(resumed.bundle).provenance["training"]["pseudo_labelled_pixels"] == added
    log = json.loads((again / "log.json").read_text())
    assert [round(r["train_loss"], 5) for r in log] == [round(r["train_loss"], 5) for r in first]
