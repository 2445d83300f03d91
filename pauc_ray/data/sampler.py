"""The training order: a fresh, seeded global permutation of the rows every epoch.

As PyTorch's ``DistributedSampler`` with ``set_epoch(epoch)`` and ``drop_last=True`` (what
MoCo and PCL train with): epoch ``e`` draws one permutation of all ``N`` rows from the seed
``(seed, e)``, every worker takes every ``W``-th position of it (rank ``r`` the positions
``r, r + W, ...``), and each worker cuts its part into batches of ``B``, dropping the
incomplete last one. So the batches, and with them the queue's negatives, differ from epoch to
epoch, every epoch sees each row at most once, and all ranks take the same number of steps.
Dropped per epoch: ``N - W * B * floor(floor(N / W) / B)`` rows (fewer than ``W * (B + 1)``),
different ones every epoch.

A pure function of its arguments: the same run resumed after a failure, or with another
worker count, continues the same sequence of permutations.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "epoch_batches",
    "epoch_permutation",
    "per_worker_batch",
    "steps_per_epoch",
    "train_subset",
]


def epoch_permutation(num_rows: int, seed: int, epoch: int) -> np.ndarray:
    """(num_rows,) int64: epoch ``epoch``'s permutation of ``0..num_rows-1``."""
    if num_rows < 0 or epoch < 0:
        raise ValueError(f"num_rows and epoch must be >= 0, got {num_rows}, {epoch}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]))
    return rng.permutation(num_rows).astype(np.int64)


def steps_per_epoch(num_rows: int, world_size: int, batch_size: int) -> int:
    """Batches each rank takes per epoch: ``floor(floor(N / W) / B)``."""
    if world_size < 1 or batch_size < 1:
        raise ValueError(f"world_size and batch_size must be >= 1, got {world_size}, {batch_size}")
    return (num_rows // world_size) // batch_size


def epoch_batches(
    num_rows: int, *, seed: int, epoch: int, rank: int, world_size: int, batch_size: int
) -> np.ndarray:
    """(steps, batch_size) int64 row positions rank ``rank`` trains on in epoch ``epoch``.

    Example:
        >>> epoch_batches(10, seed=0, epoch=0, rank=0, world_size=2, batch_size=2).shape
        (2, 2)
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    steps = steps_per_epoch(num_rows, world_size, batch_size)
    mine = epoch_permutation(num_rows, seed, epoch)[rank::world_size]
    return mine[: steps * batch_size].reshape(steps, batch_size)


def per_worker_batch(batch_size: int, world_size: int, bn_groups: int) -> int:
    """Each worker's batch: the global batch split evenly, rounded down to a multiple of
    ``bn_groups`` (ghost BatchNorm groups must be equal)."""
    groups = max(bn_groups, 1)
    return (batch_size // world_size) // groups * groups


def train_subset(num_rows: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted row positions of a seeded subset of ``max_rows`` of ``num_rows`` train rows, or
    ``None`` when the whole split is used (``max_rows`` unset or at least ``num_rows``).

    Drawn from its own stream (``(seed, 0x5375, 0)``), so the subset does not move with the
    epoch permutations, and the same on every worker and after a resume.

    Example:
        >>> train_subset(10, 4, seed=0).tolist() == sorted(train_subset(10, 4, seed=0).tolist())
        True
    """
    if max_rows is None or max_rows >= num_rows:
        return None
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    # 0x5375 ("Su"): a fixed second word keeps this stream apart from epoch_permutation's
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5375, 0]))
    return np.sort(rng.choice(num_rows, max_rows, replace=False)).astype(np.int64)
