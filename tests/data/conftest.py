"""Small prepared datasets shared by the data tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pauc_ray.data.sources import PrepareConfig, prepare


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """scikit-learn's digits, 1438/359 rows, shards of 500 rows (3 train files)."""
    out = tmp_path_factory.mktemp("prepared") / "digits"
    prepare("digits", out, PrepareConfig(rows_per_file=500, progress=False))
    return out


@pytest.fixture(scope="session")
def blobs_dir(tmp_path_factory) -> Path:
    """1001 train rows of 7 blobs (no test split), shards of 300 rows: an uneven N."""
    out = tmp_path_factory.mktemp("prepared") / "blobs"
    config = PrepareConfig(
        classes=7, samples_per_class=143, test_fraction=0, rows_per_file=300, progress=False
    )
    prepare("blobs", out, config)
    return out
