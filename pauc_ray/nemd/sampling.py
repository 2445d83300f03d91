"""Grouping by prototype and the seeded subsamples of the NEMD report (Eq. 3).

Points and pairs draw from two independent streams of one seed, so changing ``max_pairs``
leaves the kept points unchanged and vice versa.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_by_prototype", "sample_pairs", "sample_points", "unrank_pairs"]


def group_by_prototype(assignments: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Prototype ids and the row indices of their members.

    Args:
        assignments: ``(N,)`` integer prototype id of each row (any integers, not only 0..K-1).

    Returns:
        ``ids (K,)`` sorted distinct ids, and ``K`` arrays of row indices in ascending order.
    """
    order = np.argsort(assignments, kind="stable")
    ids, counts = np.unique(assignments[order], return_counts=True)
    members = np.split(order, np.cumsum(counts)[:-1])
    return ids, members


def sample_points(members: list[np.ndarray], max_points: int | None, seed: int) -> list[np.ndarray]:
    """Keep at most ``max_points`` members per prototype, uniformly without replacement.

    Args:
        members: row indices per prototype, as from :func:`group_by_prototype`.
        max_points: members kept per prototype; None keeps all.
        seed: seed of the subsample (stream 0 of ``seed``).

    Returns:
        The kept row indices per prototype, in ascending order.
    """
    if max_points is None:
        return members
    rng = np.random.default_rng([seed, 0])
    kept = []
    for rows in members:
        if len(rows) > max_points:
            rows = np.sort(rng.choice(rows, size=max_points, replace=False))
        kept.append(rows)
    return kept


def unrank_pairs(linear: np.ndarray, k: int) -> np.ndarray:
    """Map indices into the row-major upper triangle of a ``k x k`` matrix to ``(i, j)``, i < j.

    The inverse of ``i * (2k - i - 1) / 2 + (j - i - 1)``; same order as ``np.triu_indices(k, 1)``
    without building it, so ``k`` in the tens of thousands costs nothing.

    Args:
        linear: ``(P,)`` int64 in ``[0, k (k - 1) / 2)``.
        k: matrix size.

    Returns:
        ``(P, 2)`` int64.
    """
    linear = np.asarray(linear, dtype=np.int64)

    def row_start(i: np.ndarray) -> np.ndarray:
        return i * (2 * k - i - 1) // 2

    disc = np.sqrt(np.maximum(4.0 * k * (k - 1) - 8.0 * linear - 7.0, 0.0))
    i = (k - 2 - np.floor(disc / 2.0 - 0.5)).astype(np.int64)
    i = np.clip(i, 0, max(k - 2, 0))
    # Float rounding can put i one row off for huge k; fix it exactly in integers.
    i = np.where(row_start(i) > linear, i - 1, i)
    i = np.where(row_start(i + 1) <= linear, i + 1, i)
    j = linear - row_start(i) + i + 1
    return np.stack([i, j], axis=1)


def sample_pairs(k: int, max_pairs: int | None, seed: int) -> np.ndarray:
    """Unordered prototype pairs to evaluate: all, or ``max_pairs`` of them drawn uniformly.

    Args:
        k: number of prototypes.
        max_pairs: pairs kept; None (or at least ``k (k - 1) / 2``) keeps all.
        seed: seed of the subsample (stream 1 of ``seed``).

    Returns:
        ``(P, 2)`` int64 pairs ``(i, j)``, ``i < j``, in row-major order.
    """
    total = k * (k - 1) // 2
    if max_pairs is None or max_pairs >= total:
        return unrank_pairs(np.arange(total, dtype=np.int64), k)
    rng = np.random.default_rng([seed, 1])
    linear = np.sort(rng.choice(total, size=max_pairs, replace=False))
    return unrank_pairs(linear, k)
