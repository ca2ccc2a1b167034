"""How a training run steps, shared by the semantic and instance trainers: its device plan and seeds, its
optimiser, and the learning-rate schedule (by steps or by the time budget)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from geoseg.inference.device import ExecutionPlan, plan_execution
from geoseg.training.config import TrainConfig


def prepare_run(config: TrainConfig) -> tuple[ExecutionPlan, np.random.Generator]:
    """The run's device plan, with torch's threads and seed set, and the seeded generator of its samples."""
    plan = plan_execution(config.train.device, config.train.precision)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    return plan, np.random.default_rng(config.train.seed)


def make_optimiser(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimiser (AdamW or Adam) over ``parameters``."""
    optimiser = torch.optim.AdamW if config.optimiser.name == "adamw" else torch.optim.Adam
    return optimiser(parameters, lr=config.optimiser.lr, weight_decay=config.optimiser.weight_decay)


def learning_rate(progress: float, base: float, schedule: str, warmup: float) -> float:
    """LR at ``progress`` in [0, 1]: constant, cosine to 0, or one-cycle (linear warm-up, cosine down to 1 %)."""
    if schedule == "constant":
        return base
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if progress < warmup:
        return base * (0.04 + 0.96 * progress / warmup)
    rest = (progress - warmup) / max(1 - warmup, 1e-9)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * rest)))


def set_learning_rate(optimiser: torch.optim.Optimizer, config: TrainConfig, step: int, total_steps: int,
                      elapsed: float) -> None:
    """Set the LR for ``step``: how far through training we are, by steps or by the time budget when that
    runs out first.

    With ``time_limit_minutes`` the schedule is stretched to the budget, so a slow or busy machine
    still ends with an annealed learning rate instead of stopping at its peak.
    """
    progress = step / max(total_steps, 1)
    limit = config.train.time_limit_minutes
    if limit:
        progress = max(progress, elapsed / (60 * limit))
    lr = learning_rate(progress, config.optimiser.lr, config.optimiser.schedule, config.optimiser.warmup_fraction)
    for group in optimiser.param_groups:
        group["lr"] = lr
