"""Batch augmentation on torch tensors (CPU or GPU), image ``(B, C, H, W)`` and labels ``(B, H, W)``.

Geometric transforms draw one set of parameters per sample and apply it to image and labels alike
(labels by nearest neighbour; pixels a rotation brings in from outside are IGNORE_INDEX, so the loss skips
them). Photometric transforms touch the image only and work in normalised units (per band).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from geoseg.evaluation.metrics import IGNORE_INDEX
from geoseg.training.config import AugmentSpec


def flip_rot90(image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
               flip: bool = True, rot90: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal/vertical flips and 90° rotations, the same for a sample's image and labels."""
    images, label_list = [], []
    for i in range(image.shape[0]):
        x, y = image[i], labels[i]
        if flip and torch.rand((), generator=generator) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        if flip and torch.rand((), generator=generator) < 0.5:
            x, y = x.flip(-2), y.flip(-2)
        if rot90:
            k = int(torch.randint(4, (), generator=generator))
            x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
        images.append(x)
        label_list.append(y)
    return torch.stack(images), torch.stack(label_list)


def rotate(image: torch.Tensor, labels: torch.Tensor, angles_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each sample about its centre by ``angles_deg``: bilinear image, nearest labels (outside: ignore)."""
    theta = torch.deg2rad(angles_deg.to(image.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zeros = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zeros], -1), torch.stack([sin, cos, zeros], -1)], 1)
    grid = F.affine_grid(matrix, list(image.shape), align_corners=False)
    rotated = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # shift labels by one so that the zero padding marks "outside", then map it to IGNORE_INDEX
    shifted = (labels.to(image.dtype) + 1).unsqueeze(1)
    moved = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False).squeeze(1)
    out = moved.round().long() - 1
    out[out < 0] = IGNORE_INDEX
    return rotated, out.to(labels.dtype)


def random_crop(image: torch.Tensor, labels: torch.Tensor, size: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``size`` x ``size`` crop per sample, at the same place in image and labels."""
    h, w = image.shape[-2:]
    if (h, w) == (size, size):
        return image, labels
    rows = torch.randint(h - size + 1, (image.shape[0],), generator=generator)
    cols = torch.randint(w - size + 1, (image.shape[0],), generator=generator)
    images = [image[i, :, r:r + size, c:c + size] for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))]
    crops = [labels[i, r:r + size, c:c + size] for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))]
    return torch.stack(images), torch.stack(crops)


def jitter(image: torch.Tensor, brightness: float, contrast: float, noise_std: float,
           generator: torch.Generator) -> torch.Tensor:
    """Per-sample, per-band gain and shift, then Gaussian noise (normalised units)."""
    b, c = image.shape[:2]
    shape = (b, c, 1, 1)
    gain = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * contrast
    shift = (torch.rand(shape, generator=generator) * 2 - 1) * brightness
    out = image * gain.to(image.device) + shift.to(image.device)
    if noise_std > 0:
        out = out + torch.randn(image.shape, generator=generator).to(image.device) * noise_std
    return out


def cutmix(image: torch.Tensor, labels: torch.Tensor, probability: float, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix for segmentation: with ``probability``, a window receives a box (a quarter to 60 % of its side)
    of image and labels from another window of the batch, at the same place, centred on one of the partner's
    labelled pixels when it has any.

    Why: an analyst draws polygons inside homogeneous areas, so in training a labelled pixel's surroundings
    are always its own class, and a network with context learns "near water means water": it painted land
    within 10 px of water as water (78 % of the land within 3 px on a Sentinel-2 chip). Pasted boxes put
    labelled pixels next to other classes, so the class must come from the pixels themselves.
    """
    n, _, h, w = image.shape
    partners = torch.randperm(n, generator=generator).tolist()
    image, labels = image.clone(), labels.clone()
    source_image, source_labels = image.clone(), labels.clone()
    for i, j in enumerate(partners):
        if i == j or float(torch.rand((), generator=generator)) >= probability:
            continue
        box_h, box_w = (max(1, int(side * (0.25 + 0.35 * float(torch.rand((), generator=generator)))))
                        for side in (h, w))
        labelled = torch.nonzero(source_labels[j] != IGNORE_INDEX)
        if len(labelled):
            row, col = labelled[int(torch.randint(len(labelled), (), generator=generator))].tolist()
        else:
            row, col = int(torch.randint(h, (), generator=generator)), int(torch.randint(w, (), generator=generator))
        top, left = min(max(row - box_h // 2, 0), h - box_h), min(max(col - box_w // 2, 0), w - box_w)
        rows, cols = slice(top, top + box_h), slice(left, left + box_w)
        image[i, :, rows, cols] = source_image[j, :, rows, cols]
        labels[i, rows, cols] = source_labels[j, rows, cols]
    return image, labels


def mixup(image: torch.Tensor, alpha: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al. 2018): the batch blended with a shuffled copy of itself, ``lam·x + (1-lam)·x[perm]``,
    one ``lam ~ Beta(alpha, alpha)`` per batch. Returns the mixed images, ``perm`` (the partners' labels are
    ``labels[perm]``) and ``lam``; the loss is then ``lam·L(labels) + (1-lam)·L(labels[perm])``.

    Why: a few polygons drawn inside homogeneous areas are separable in many ways, and a network fits them
    within a few steps wherever its boundary happens to fall. Training on blends of two classes' pixels with
    blended targets puts the boundary between them, as a RandomForest's mid-point splits do.
    """
    perm = torch.from_numpy(rng.permutation(image.shape[0])).to(image.device)
    lam = float(rng.beta(alpha, alpha))
    return lam * image + (1 - lam) * image[perm], perm, lam


class Augmenter:
    """Applies an :class:`AugmentSpec` to batches and crops them to ``size``."""

    def __init__(self, spec: AugmentSpec, size: int, seed: int = 0):
        self.spec = spec
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)

    def read_size(self) -> int:
        """Window side to read so that a free rotation still leaves a ``size`` crop mostly inside the data."""
        if self.spec.rotate_degrees > 0:
            return int(math.ceil(self.size * math.sqrt(2) / 2) * 2)
        return self.size + self.size // 8

    def __call__(self, image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.spec
        image, labels = flip_rot90(image, labels, self.generator, spec.flip, spec.rot90)
        if spec.rotate_degrees > 0:
            draw = (torch.rand(image.shape[0], generator=self.generator) * 2 - 1) * spec.rotate_degrees
            keep = torch.rand(image.shape[0], generator=self.generator) >= spec.rotate_probability
            draw[keep] = 0
            if bool((draw != 0).any()):
                image, labels = rotate(image, labels, draw.to(image.device))
        if spec.rotate_degrees > 0:
            image, labels = _centre_then_jitter_crop(image, labels, self.size, self.generator)
        else:
            image, labels = random_crop(image, labels, self.size, self.generator)
        if spec.cutmix > 0:
            image, labels = cutmix(image, labels, spec.cutmix, self.generator)
        if spec.brightness or spec.contrast or spec.noise_std:
            image = jitter(image, spec.brightness, spec.contrast, spec.noise_std, self.generator)
        return image, labels


def _centre_then_jitter_crop(image: torch.Tensor, labels: torch.Tensor, size: int, generator: torch.Generator
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """After a rotation the corners hold no data: crop near the centre (random offset up to 1/8 of size)."""
    h, w = image.shape[-2:]
    margin = min(size // 8, (h - size) // 2, (w - size) // 2)
    top, left = (h - size) // 2 - margin, (w - size) // 2 - margin
    region = (image[..., top:top + size + 2 * margin, left:left + size + 2 * margin],
              labels[..., top:top + size + 2 * margin, left:left + size + 2 * margin])
    return random_crop(*region, size, generator)
