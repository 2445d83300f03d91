"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from pauc_ray.data import PrepareConfig, prepare


@pytest.fixture(scope="module")
def blobs_dir(tmp_path_factory):
    """Four Gaussian blobs, 150 rows each, prepared once per test module."""
    directory = tmp_path_factory.mktemp("data") / "blobs"
    prepare("blobs", directory, PrepareConfig(classes=4, samples_per_class=150, progress=False))
    return directory
