"""Shared data for the NEMD tests: clustered points on the sphere and their POT references.

The references (exact EMD and POT's Sinkhorn, pair by pair) are computed once per session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd.reference import pot_w1_matrix
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
    x, y = sphere_clusters(len(SIZES), max(SIZES), dim, spread, seed)
    return [x[y == p][:size] for p, size in enumerate(SIZES)]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run single-threaded: on a shared 2-core machine, torch's second OpenMP thread
    stalls for tens of milliseconds per call when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", params=sorted(CASES))
def sphere_case(request: pytest.FixtureRequest) -> SphereCase:
    clouds = make_clouds(*CASES[request.param])
    config = NEMDConfig()
    return SphereCase(
        name=request.param,
        embeddings=np.concatenate(clouds),
        assignments=np.repeat(np.arange(len(clouds)), [len(c) for c in clouds]),
        clouds=clouds,
        emd=pot_w1_matrix(clouds, method="emd"),
        pot_sinkhorn=pot_w1_matrix(
            clouds,
            method="sinkhorn",
            epsilon=config.epsilon,
            max_iter=config.max_iter,
            tol=config.tol,
        ),
    )


def upper(matrix: np.ndarray) -> np.ndarray:
    """The strictly upper triangle of a square matrix, flattened."""
    return matrix[np.triu_indices(len(matrix), 1)]
