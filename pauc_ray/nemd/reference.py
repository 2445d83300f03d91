"""Reference W1 between prototypes with POT, one pair at a time (Eq. 3).

The slow, obvious path that the batched Sinkhorn of :mod:`pauc_ray.nemd.sinkhorn` is tested
against: for each pair, the Euclidean cost matrix ``M_ij = ||x_i - y_j||`` (not squared),
uniform weights, and either POT's log-domain Sinkhorn ``ot.sinkhorn2(..., method=
"sinkhorn_log")`` (which returns the transport cost ``<gamma_eps, M>``, the same quantity as
the fast path) or the exact network-simplex ``ot.emd2``.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence

import numpy as np
import ot

__all__ = ["pot_w1_matrix", "pot_w1_pair", "pot_w1_values"]

logger = logging.getLogger(__name__)

_METHODS = ("sinkhorn", "emd")
# Network-simplex iterations at most; POT's default (1e5) can stop short past ~500 points.
_EMD_MAX_ITER = 10_000_000


def pot_w1_pair(
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "emd",
    epsilon: float | None = None,
    max_iter: int = 10000,
    tol: float = 1e-4,
) -> float:
    """W1 between the uniform empirical distributions of ``x (n, D)`` and ``y (m, D)``.

    Args:
        x: ``(n, D)`` points of the first distribution.
        y: ``(m, D)`` points of the second distribution (same ``D``).
        method: ``"emd"`` (exact, ``ot.emd2``) or ``"sinkhorn"`` (``ot.sinkhorn2`` with
            ``method="sinkhorn_log"``, returning ``<gamma_eps, M>``).
        epsilon: Sinkhorn's ``reg``, in units of the ground cost; required for ``"sinkhorn"``.
        max_iter: Sinkhorn iterations at most (POT's ``numItermax``).
        tol: POT's ``stopThr`` (the L2 norm of the marginal error).

    Returns:
        The transport cost, in the units of the coordinates.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, D) and (m, D), got {x.shape}, {y.shape}")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("x and y need at least one point each")
    cost = ot.dist(x, y, metric="euclidean")
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    if method == "emd":
        return float(ot.emd2(a, b, cost, numItermax=_EMD_MAX_ITER))
    if epsilon is None or not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(
            f"epsilon must be a finite number > 0 for method='sinkhorn', got {epsilon!r}"
        )
    value = ot.sinkhorn2(
        a, b, cost, reg=epsilon, method="sinkhorn_log", numItermax=max_iter, stopThr=tol
    )
    return float(value)


def pot_w1_values(
    points: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, int]] | np.ndarray,
    *,
    method: str = "emd",
    epsilon: float | None = None,
    max_iter: int = 10000,
    tol: float = 1e-4,
) -> np.ndarray:
    """W1 of the listed pairs of point clouds, one POT call per pair.

    Args:
        points: ``K`` arrays ``(n_p, D)``, one per prototype (sizes may differ).
        pairs: ``(P, 2)`` index pairs ``(p, q)`` with ``p != q``.
        method, epsilon, max_iter, tol: as in :func:`pot_w1_pair`.

    Returns:
        ``(P,)`` float64 transport costs in the order of ``pairs``.
    """
    k = len(points)
    index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    values = np.empty(len(index))
    for row, (p, q) in enumerate(index.tolist()):
        if p == q or not (0 <= p < k and 0 <= q < k):
            raise ValueError(f"pairs must hold distinct indices in [0, {k}), got ({p}, {q})")
        values[row] = pot_w1_pair(
            points[p], points[q], method=method, epsilon=epsilon, max_iter=max_iter, tol=tol
        )
    logger.debug("POT %s: %d pairs of %d prototypes", method, len(index), k)
    return values


def pot_w1_matrix(
    points: Sequence[np.ndarray],
    *,
    method: str = "emd",
    epsilon: float | None = None,
    pairs: Sequence[tuple[int, int]] | np.ndarray | None = None,
    max_iter: int = 10000,
    tol: float = 1e-4,
) -> np.ndarray:
    """``K x K`` matrix of W1 between ``K`` point clouds, computed pair by pair with POT.

    Args:
        points: ``K`` arrays ``(n_p, D)``, one per prototype (sizes may differ).
        method, epsilon, max_iter, tol: as in :func:`pot_w1_pair`.
        pairs: ``(P, 2)`` index pairs ``(p, q)``, ``p != q``, to evaluate; all unordered pairs
            when None.

    Returns:
        ``(K, K)`` float64, symmetric, 0 on the diagonal, NaN for pairs not evaluated.
    """
    k = len(points)
    if pairs is None:
        pairs = list(itertools.combinations(range(k), 2))
    index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    values = pot_w1_values(
        points, index, method=method, epsilon=epsilon, max_iter=max_iter, tol=tol
    )
    matrix = np.full((k, k), np.nan)
    np.fill_diagonal(matrix, 0.0)
    matrix[index[:, 0], index[:, 1]] = values
    matrix[index[:, 1], index[:, 0]] = values
    return matrix
