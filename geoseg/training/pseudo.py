"""Self-training: the model's confident predictions on the unlabelled scene become extra training labels.

An analyst's polygons cover a few per cent of a scene, drawn inside homogeneous areas; a network trained on
them alone learns those interiors and memorises them within a few hundred steps. Part way through training
(``train.self_training.start`` of the budget), the best model so far (chosen on the validation polygons)
predicts every training scene; pixels it gives one class with probability at least
``train.self_training.confidence`` are labelled with that class ("pseudo-labels"), and training goes on with
them beside the analyst's labels, which always win where both exist. The network then sees edges, mixed
areas and the whole scene's variety, which the polygons alone never show it.

Validation stays honest: no pseudo-label is made on the held-out polygons (nor within ``buffer`` px of
them) or in a validation or test block, so model selection still scores only the analyst's labels.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.inference.device import ExecutionPlan
from geoseg.inference.source import mirror_pad
from geoseg.inference.tiling import halo_windows
from geoseg.training.data import SceneData


def predict_confident(module: torch.nn.Module, image: np.ndarray, multiple: int, plan: ExecutionPlan,
                      tile: int = 512, halo: int = 64, needed: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Class indices (H, W) uint8 and their softmax probability (H, W) float32 of a normalised image, in
    tiles with a ``halo`` of context each side.

    With ``needed`` (H, W) bool, tiles without a needed pixel are skipped (class 0, probability 0): held-out
    polygons are scattered over a box that is mostly unlabelled.
    """
    _, height, width = image.shape
    classes = np.zeros((height, width), np.uint8)
    confidence = np.zeros((height, width), np.float32)
    module.eval()
    with torch.inference_mode(), plan.autocast():
        for core, context in halo_windows(height, width, tile, halo):
            if needed is not None and not needed[core.toslices()].any():
                continue
            rows, cols = context.toslices()
            chunk = image[:, rows, cols]
            h, w = chunk.shape[1:]
            chunk = mirror_pad(chunk, h + (-h) % multiple, w + (-w) % multiple)
            logits = module(torch.from_numpy(np.ascontiguousarray(chunk))[None].to(plan.device))
            best, index = torch.softmax(logits[0, :, :h, :w].float(), dim=0).max(0)
            top, left = core.row_off - context.row_off, core.col_off - context.col_off
            inside = (slice(top, top + core.height), slice(left, left + core.width))
            classes[core.toslices()] = index.cpu().numpy().astype(np.uint8)[inside]
            confidence[core.toslices()] = best.cpu().numpy()[inside]
    return classes, confidence


def pseudo_labels(scene: SceneData, classes: np.ndarray, confidence: np.ndarray, threshold: float,
                  buffer: int) -> np.ndarray:
    """The scene's training labels with confident predictions added where it has none.

    Never inside the validation or test block of a block split, nor on or within ``buffer`` px of held-out
    polygons, nor on invalid pixels; the analyst's labels are kept as they are.
    """
    allowed = scene.valid & (scene.labels == IGNORE_INDEX) & (confidence >= threshold)
    if scene.val_labels is not None:
        held = scene.val_labels != IGNORE_INDEX
        if buffer:
            held = ndimage.binary_dilation(held, np.ones((3, 3), bool), iterations=buffer)
        allowed &= ~held
    else:
        trained = np.zeros_like(allowed)
        for box in scene.train_boxes:
            trained[box.slices] = True
        allowed &= trained
    return np.where(allowed, classes, scene.labels).astype(scene.labels.dtype)
