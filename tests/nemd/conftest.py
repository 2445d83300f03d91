"""Fixtures of the NEMD tests; the shared cases' POT references (exact EMD and POT's Sinkhorn,
pair by pair) are computed once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nemd_cases import CASES, SphereCase, make_clouds

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd.reference import pot_w1_matrix


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
