"""Shared test fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# the Ray tests in one xdist worker, first (the hook is found by its name in this module)
from ray_test_group import pytest_collection_modifyitems  # noqa: F401


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


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3-compatible server on loopback for the whole test run (moto in server mode, in
    this process): no test ever reaches a real cloud."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, request) -> str:
    """A fresh bucket on the loopback S3 server, with this process's AWS settings pointing at
    it (the trainer forwards them to Ray's workers); returns ``s3://BUCKET``."""
    import re
    import uuid

    import pyarrow.fs as pafs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{stem}-{uuid.uuid4().hex[:8]}"
    pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True).create_dir(bucket)
    return f"s3://{bucket}"
