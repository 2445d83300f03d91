"""Instance-level alignment and uniformity (Wang & Isola, ICML 2020; the paper's ref. [33]).

- alignment: ``E ||f(x) - f(x+)||_2^alpha`` over positive pairs, the two augmented views of one
  sample (``alpha = 2``); 0 is perfect, 4 the largest possible on the unit sphere.
- uniformity: ``log E exp(-t ||f(x) - f(y)||_2^2)`` over pairs of distinct samples (``t = 2``);
  lower is more uniform, 0 means every embedding is the same point.

Both take L2-normalised embeddings (rows are normalised here too). Pure tensor functions; the
augmenting and embedding is in :mod:`pauc_ray.evaluation.report`. PAUC's p-align and p-uniform
(Eqs. 4 and 5) are the same quantities on prototypes instead of instances.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _unit_rows(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {tuple(t.shape)}")
    return F.normalize(t, dim=1)


def alignment(
    view1: np.ndarray | torch.Tensor, view2: np.ndarray | torch.Tensor, alpha: float = 2.0
) -> float:
    """``mean_i ||z1_i - z2_i||^alpha`` over rows, after L2-normalising both.

    Args:
        view1: (N, D) embeddings of the first augmented view.
        view2: (N, D) embeddings of the second view of the same N samples, row for row.
        alpha: exponent (Wang & Isola: 2).

    Example:
        >>> z = np.eye(3)
        >>> alignment(z, z), alignment(z, -z)
        (0.0, 4.0)
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    a, b = _unit_rows(view1, "view1"), _unit_rows(view2, "view2")
    if a.shape != b.shape:
        raise ValueError(f"view1 and view2 must have the same shape, got {a.shape} and {b.shape}")
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(
    embeddings: np.ndarray | torch.Tensor,
    t: float = 2.0,
    max_samples: int | None = 5000,
    seed: int = 0,
) -> float:
    """``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` over a seeded subsample of the rows.

    Args:
        embeddings: (N, D), N >= 2; rows are L2-normalised first.
        t: Gaussian potential scale (Wang & Isola: 2).
        max_samples: rows kept at most (uniformly at random, ``seed``); the pairwise cost is
            quadratic in it. None keeps all.
        seed: seed of the subsample.

    Example:
        >>> round(uniformity(np.ones((4, 3))), 6)  # one point: the maximum, 0
        0.0
    """
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = _unit_rows(embeddings, "embeddings")
    if z.shape[0] < 2:
        raise ValueError("uniformity needs at least 2 embeddings")
    if max_samples is not None and z.shape[0] > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(z.shape[0], max_samples, replace=False))
        z = z[torch.as_tensor(keep)]
    sq = torch.pdist(z).pow(2)  # the N (N - 1) / 2 distinct pairs
    # log-mean-exp, stable for large t
    return float(torch.logsumexp(-t * sq, dim=0) - np.log(sq.numel()))
