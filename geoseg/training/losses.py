"""Losses: cross-entropy (class weights, ignore index) plus soft Dice, weighted and summed.

Dice per class ``c`` is ``1 - 2·Σ(p·t) / (Σp² + Σt²)`` over the labelled pixels of the batch (Milletari
et al. 2016, squared denominators), averaged over the classes present in the batch's labels: a class
absent from a batch would otherwise push its probabilities towards zero everywhere, which is what
hurts rare classes. CE keeps every pixel honest; Dice keeps small classes from being drowned by big ones.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geoseg.evaluation.metrics import IGNORE_INDEX

EPS = 1e-6


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean over present classes of ``1 - 2·Σ(p·t) / (Σp² + Σt²)``; ``logits`` (B, K, H, W), ``target`` (B, H, W)."""
    num_classes = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1)
    valid = (target != ignore_index)
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    mask = valid.unsqueeze(1).float()
    probs, onehot = probs * mask, onehot * mask
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = (probs ** 2).sum(dims) + (onehot ** 2).sum(dims)
    per_class = 1 - 2 * intersection / (denominator + EPS)
    present = onehot.sum(dims) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    return per_class[present].mean()


def class_weights(counts: np.ndarray, max_weight: float = 10.0) -> np.ndarray:
    """Inverse square-root frequency weights, scaled so the average *pixel* weighs 1, capped at ``max_weight``.

    Square root rather than plain inverse: NLCD-style labels are noisy, and full inverse weighting makes
    a 0.1 % class dominate the loss with its noise. Absent classes get weight 0.
    """
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    share = counts[present] / counts[present].sum()
    weights[present] = 1 / np.sqrt(share)
    weights[present] /= float(np.sum(share * weights[present]))
    return np.minimum(weights, max_weight)


class SegmentationLoss(nn.Module):
    """``ce_weight · CE(weights, ignore) + dice_weight · soft Dice``."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 0.5, weights: torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.ignore_index = ignore_index
        self.register_buffer("weights", weights if weights is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        # zero, but part of the graph: a batch without a labelled pixel (sparse polygons) still steps
        loss = logits.float().sum() * 0.0
        if self.ce_weight:
            weight = self.weights if self.weights.numel() else None
            if bool((target != self.ignore_index).any()):
                loss = loss + self.ce_weight * F.cross_entropy(logits.float(), target, weight=weight,
                                                               ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.ignore_index)
        return loss
