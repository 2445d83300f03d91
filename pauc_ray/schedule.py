"""The paper's learning-rate schedule, scaled to any number of epochs (Sec. 5.1)."""

from __future__ import annotations

from collections.abc import Sequence


def step_learning_rate(
    epoch: int,
    *,
    base_lr: float,
    epochs: int,
    milestones: Sequence[float] = (0.6, 0.8),
    factor: float = 0.1,
) -> float:
    """``base_lr`` times ``factor`` for every milestone passed.

    The paper trains 200 epochs and multiplies the rate by 0.1 at epochs 120 and 160, i.e. at
    60% and 80% of the run; ``milestones`` are those fractions of ``epochs``.

    >>> [step_learning_rate(e, base_lr=1.0, epochs=10) for e in (0, 5, 6, 8, 9)]
    [1.0, 1.0, 0.1, 0.010000000000000002, 0.010000000000000002]
    """
    if epochs < 1 or not 0 <= epoch:
        raise ValueError(f"need epochs >= 1 and epoch >= 0, got epoch={epoch}, epochs={epochs}")
    passed = sum(epoch >= round(m * epochs) for m in milestones)
    return base_lr * factor**passed
