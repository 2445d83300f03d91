"""Seeded clusters on the unit sphere, for tests, benchmarks and sanity checks of NEMD (Eq. 3).

Each cluster is von Mises-Fisher-like: a random unit centre plus isotropic Gaussian noise,
projected back onto the sphere. ``spread`` is the expected norm of the noise vector (noise per
coordinate ``spread / sqrt(dim)``), so one value gives a comparable angular spread in any
dimension: about ``atan(spread)`` around the centre.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sphere_clusters"]


def sphere_clusters(
    num_clusters: int,
    points: int,
    dim: int,
    spread: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_clusters`` clusters of ``points`` unit vectors each in ``dim`` dimensions.

    Args:
        num_clusters: number of clusters ``K``.
        points: points per cluster.
        dim: embedding dimension ``D`` (>= 2).
        spread: expected norm of the Gaussian noise added to each unit centre before
            projecting back onto the sphere.
        seed: seed of the generator.

    Returns:
        ``embeddings (K * points, D)`` float64 unit rows, grouped by cluster, and
        ``assignments (K * points,)`` int64 cluster ids ``0..K-1``.
    """
    if num_clusters < 1 or points < 1 or dim < 2:
        raise ValueError(
            f"need num_clusters >= 1, points >= 1, dim >= 2, got {num_clusters}, {points}, {dim}"
        )
    if spread < 0:
        raise ValueError(f"spread must be >= 0, got {spread}")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, 1, dim))
    centres /= np.linalg.norm(centres, axis=2, keepdims=True)
    noise = rng.normal(size=(num_clusters, points, dim)) * (spread / np.sqrt(dim))
    x = centres + noise
    x /= np.linalg.norm(x, axis=2, keepdims=True)
    assignments = np.repeat(np.arange(num_clusters, dtype=np.int64), points)
    return x.reshape(num_clusters * points, dim), assignments
