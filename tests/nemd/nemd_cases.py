"""Clustered points on the sphere shared by the NEMD tests (fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pauc_ray.nemd.synthetic import sphere_clusters

# Uneven prototype sizes (100..150 points) so the fast path pads; 6 clusters, 15 pairs.
SIZES = (100, 110, 120, 130, 140, 150)
# (dim, spread, seed); spread = expected norm of the noise around each unit centre. In 2-D,
# 0.5 makes neighbouring clusters overlap (pair W1 from 0.21 to 1.85); in 128-D, 1.0 puts
# points ~45 degrees off their centre (pair W1 1.29-1.38).
CASES = {"2d": (2, 0.5, 1), "128d": (128, 1.0, 0)}


@dataclass(frozen=True)
class SphereCase:
    name: str
    embeddings: np.ndarray  # (N, D) unit rows
    assignments: np.ndarray  # (N,) ids 0..K-1
    clouds: list[np.ndarray]  # K arrays (n_p, D)
    emd: np.ndarray  # (K, K) exact W1
    pot_sinkhorn: np.ndarray  # (K, K) POT sinkhorn2 at the default epsilon


def make_clouds(dim: int, spread: float, seed: int = 0) -> list[np.ndarray]:
    """``len(SIZES)`` clusters on the unit sphere with the sizes of ``SIZES``."""
    x, y = sphere_clusters(len(SIZES), max(SIZES), dim, spread, seed)
    return [x[y == p][:size] for p, size in enumerate(SIZES)]


def upper(matrix: np.ndarray) -> np.ndarray:
    """The strictly upper triangle of a square matrix, flattened."""
    return matrix[np.triu_indices(len(matrix), 1)]
