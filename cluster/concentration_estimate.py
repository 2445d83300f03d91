"""Per-cluster concentration ``phi`` (PCL's estimate, Eq. 2 of the PAUC paper).

``phi`` is the temperature of each prototype in ProtoNCE: a loose cluster (members far from its
centroid) gets a large ``phi`` and so a softer logit. This follows PCL's reference code:

1. ``phi_c = sum_{v in c} ||v - c_raw|| / (Z log(Z + 10))`` over the ``Z`` members of ``c``,
   with the plain (not squared) Euclidean distance to the *raw* k-means centroid, i.e. the
   square root of the squared L2 distance faiss returns;
2. clusters with fewer than two members (one, or an empty one) take the largest ``phi`` among
   the clusters with at least two members, since one member gives no spread to estimate;
3. ``phi`` is clipped to its 10th..90th percentile over all clusters (linear interpolation,
   as ``np.percentile``), so a few extreme clusters cannot dominate;
4. ``phi`` is rescaled so its mean equals ``mean`` (PCL uses the InfoNCE temperature ``tau``).

Degenerate inputs, where PCL's code would divide by zero, give a constant ``phi = mean``: no
cluster with two or more members, or every member exactly on its centroid.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["concentration"]


def concentration(
    distances: np.ndarray, assignments: np.ndarray, num_clusters: int, mean: float
) -> np.ndarray:
    """Concentration ``phi`` of each of ``num_clusters`` clusters (PCL, Eq. 2).

    Args:
        distances: (N,) Euclidean distance (not squared) of each point to the raw centroid of
            its cluster; non-negative, in the units of the features.
        assignments: (N,) cluster index of each point, in ``[0, num_clusters)``.
        num_clusters: ``K``, the number of clusters (some may be empty).
        mean: the mean of the returned ``phi``; must be positive.

    Returns:
        (K,) float32 ``phi``, positive where any spread exists, with mean ``mean``.

    Example:
        >>> phi = concentration(np.array([1.0, 3.0, 2.0]), np.array([0, 0, 1]), 2, 0.2)
        >>> phi.shape, round(float(phi.mean()), 6)
        ((2,), 0.2)
    """
    distances = np.asarray(distances, dtype=np.float64)
    assignments = np.asarray(assignments)
    if distances.ndim != 1 or assignments.ndim != 1 or len(distances) != len(assignments):
        raise ValueError(
            "concentration: distances and assignments must be 1-D of equal length, got shapes "
            f"{distances.shape} and {assignments.shape}"
        )
    if not np.issubdtype(assignments.dtype, np.integer):
        raise ValueError(
            f"concentration: assignments must be integers, got dtype {assignments.dtype}"
        )
    if int(num_clusters) < 1:
        raise ValueError(f"concentration: num_clusters must be >= 1, got {num_clusters}")
    if not (math.isfinite(mean) and mean > 0):
        raise ValueError(f"concentration: mean must be positive and finite, got {mean}")
    if len(assignments) and (assignments.min() < 0 or assignments.max() >= num_clusters):
        raise ValueError(
            f"concentration: assignments must lie in [0, {num_clusters}), got range "
            f"[{assignments.min()}, {assignments.max()}]"
        )
    if len(distances) and not (np.isfinite(distances).all() and distances.min() >= 0):
        raise ValueError("concentration: distances must be finite and non-negative")

    counts = np.bincount(assignments, minlength=num_clusters)
    sums = np.bincount(assignments, weights=distances, minlength=num_clusters)
    spread = counts >= 2
    if not spread.any():
        return np.full(num_clusters, mean, dtype=np.float32)

    phi = np.zeros(num_clusters, dtype=np.float64)
    z = counts[spread].astype(np.float64)
    phi[spread] = sums[spread] / (z * np.log(z + 10.0))
    phi[~spread] = phi[spread].max()
    low, high = np.percentile(phi, [10.0, 90.0])
    phi = np.clip(phi, low, high)
    phi_mean = phi.mean()
    if phi_mean <= 0:
        return np.full(num_clusters, mean, dtype=np.float32)
    return (phi * (mean / phi_mean)).astype(np.float32)
