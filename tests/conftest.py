"""Shared test fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole test run (started on first use).

    Four logical CPUs on this 2-core machine: train workers take fractions of a CPU and Ray
    Data's read tasks need whole ones, and with only the physical count the two starve each
    other (shared/RAY-NOTES.md). Started as the trainer starts its own (dashboard on, workers
    told the address), so Ray Train removes the placement groups of runs that are killed.
    """
    import ray

    from pauc_ray.train.local_cluster import start_local_cluster

    if not ray.is_initialized():
        start_local_cluster(
            num_cpus=4,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}},
        )
    yield ray
    ray.shutdown()
