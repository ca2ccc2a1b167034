"""Validation on held-out whole polygons (a grouped split), for sparse labels.

An analyst's labels are a few dozen polygons covering a small share of the scene. A row block held out
for validation then holds a handful of them, often none of a rare class, and takes them from training;
random pixels would put parts of one polygon on both sides and score the model on pixels next to the
ones it learnt. Grouping fixes both: every labelled connected area of one class (a polygon, or polygons
that touch) is one group, and a seeded share of each class's groups is held out whole, so every class
with at least two polygons is validated and no polygon is ever in two sets. Training labels within
``buffer`` px of a held-out polygon are dropped as well, so a polygon drawn next to a held-out one cannot
stand in for it.

The rule for "sparse": labelled pixels cover less than :data:`SPARSE_SHARE` of the scene's valid pixels
(:func:`is_sparse`); dense label rasters keep the row or column block, which tests on an unseen area.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from geoseg.evaluation.metrics import IGNORE_INDEX

#: Below this share of labelled pixels (of the valid ones) labels are sparse: polygons, not a map.
SPARSE_SHARE = 0.25


def is_sparse(labels: np.ndarray, valid: np.ndarray) -> bool:
    """Whether the labels are sparse polygons rather than a dense label map (see :data:`SPARSE_SHARE`)."""
    return int(np.count_nonzero(labels != IGNORE_INDEX)) < SPARSE_SHARE * max(int(np.count_nonzero(valid)), 1)


def label_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id (H, W) int32 of every labelled pixel (-1 elsewhere), and the class index of each group.

    A group is an 8-connected area of one class: a polygon, or polygons of one class that touch.
    """
    groups = np.full(labels.shape, -1, np.int32)
    group_class: list[int] = []
    for class_index in np.unique(labels[labels != IGNORE_INDEX]):
        components, count = ndimage.label(labels == class_index, structure=np.ones((3, 3), bool))
        found = components > 0
        groups[found] = components[found] - 1 + len(group_class)
        group_class += [int(class_index)] * count
    return groups, np.array(group_class, np.int64)


def held_out_groups(group_class: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean per group: held out for validation. ``share`` of each class's groups, rounded, at least one
    where a class has two or more (a class with one polygon keeps it for training)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(group_class.size, bool)
    for class_index in np.unique(group_class):
        members = np.flatnonzero(group_class == class_index)
        if members.size < 2:
            continue
        count = min(max(1, int(round(share * members.size))), members.size - 1)
        held[rng.choice(members, count, replace=False)] = True
    return held


def polygon_split(labels: np.ndarray, share: float, buffer: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training labels, validation labels): whole groups held out, training labels near them dropped."""
    groups, group_class = label_groups(labels)
    held = held_out_groups(group_class, share, seed)
    validation_mask = (groups >= 0) & held[np.maximum(groups, 0)]
    validation = np.where(validation_mask, labels, IGNORE_INDEX).astype(labels.dtype)
    near = ndimage.binary_dilation(validation_mask, np.ones((3, 3), bool), iterations=buffer) if buffer else validation_mask
    training = np.where(near, IGNORE_INDEX, labels).astype(labels.dtype)
    return training, validation
