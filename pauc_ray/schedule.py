"""Learning-rate schedules, built from torch's own schedulers and stepped once per
optimisation step.

- ``cosine`` (default, as MoCo v2 and most SSL code since): linear warm-up from 1% of the rate
  over ``warmup_epochs``, then cosine decay to 0 at the last step (``LinearLR`` then
  ``CosineAnnealingLR`` in a ``SequentialLR``).
- ``step``: the paper's (Sec. 5.1): x0.1 at epochs 120 and 160 of 200, i.e. at 60% and 80% of
  the run (``MultiStepLR``); ``milestones`` are those fractions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)

LR_SCHEDULES = ("cosine", "step")
WARMUP_START_FACTOR = 0.01


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    milestones: Sequence[float] = (0.6, 0.8),
    start_step: int = 0,
) -> LRScheduler:
    """The per-step scheduler of ``schedule`` over ``epochs * steps_per_epoch`` steps.

    Args:
        optimizer: its param groups' ``lr`` is the base (peak) rate.
        schedule: ``"cosine"`` or ``"step"`` (see the module docstring).
        warmup_epochs: linear warm-up of ``cosine`` (fractions allowed; 0: none; clipped to
            all but the last step).
        milestones: fractions of ``epochs`` where ``step`` multiplies the rate by 0.1.
        start_step: optimisation steps already taken (a resumed run). The scheduler is moved
            there by stepping it, so a run resumed with another worker count (and so another
            ``steps_per_epoch``) lands on the same point of the same curve.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = build_lr_scheduler(opt, "cosine", epochs=4, steps_per_epoch=5, warmup_epochs=1)
        >>> [round(sched.get_last_lr()[0], 3)]
        [0.01]
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need epochs and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    total = epochs * steps_per_epoch
    if schedule == "step":
        points = sorted({round(m * epochs) * steps_per_epoch for m in milestones})
        scheduler: LRScheduler = MultiStepLR(optimizer, points, gamma=0.1)
    else:
        warm = min(round(warmup_epochs * steps_per_epoch), total - 1)
        cosine = CosineAnnealingLR(optimizer, T_max=max(total - warm, 1), eta_min=0.0)
        if warm > 0:
            linear = LinearLR(optimizer, WARMUP_START_FACTOR, 1.0, total_iters=warm)
            scheduler = SequentialLR(optimizer, [linear, cosine], milestones=[warm])
        else:
            scheduler = cosine
    with warnings.catch_warnings():
        # fast-forwarding before any optimizer.step() is intended here
        warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*", category=UserWarning)
        for _ in range(min(start_step, total)):
            scheduler.step()
    return scheduler
