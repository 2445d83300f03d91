"""service.datasets: only folders under ROOT/datasets are datasets, by a checked name."""

from __future__ import annotations

import numpy as np
import pytest

from pauc_ray.data import DatasetError
from service.datasets import DatasetCatalog


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../datasets/blobs",
        "blobs/../digits",
        "/etc",
        "/",
        "",
        ".hidden",
        "blobs/train",
        "escape",  # a symbolic link to a dataset outside ROOT
        "missing",
        "blobs\x00",
        "x" * 500,
    ],
)
def test_names_that_are_not_registered_datasets(storage_root, name):
    catalog = DatasetCatalog(storage_root)
    assert catalog.resolve(name) is None
    assert catalog.info(name) is None


def test_registered_datasets(storage_root):
    catalog = DatasetCatalog(storage_root)
    assert catalog.names() == ["blobs", "digits"]
    entries = {entry["name"]: entry for entry in catalog.describe()}
    assert entries["blobs"]["kind"] == "vector" and entries["blobs"]["sample_shape"] == [3]
    assert entries["digits"]["sample_shape"] == [1, 8, 8]
    assert entries["blobs"]["counts"]["train"] == 128


def test_load_subsamples_with_the_seed(storage_root):
    catalog = DatasetCatalog(storage_root)
    full, total = catalog.load("blobs", "train", max_rows=10_000, seed=0)
    assert full.shape == (128, 3) and total == 128
    part, total = catalog.load("blobs", "train", max_rows=50, seed=1)
    again, _ = catalog.load("blobs", "train", max_rows=50, seed=1)
    assert part.shape == (50, 3) and total == 128
    np.testing.assert_array_equal(part, again)
    # rows of the subsample are rows of the split, in id order
    positions = [int(np.flatnonzero((full == row).all(axis=1))[0]) for row in part]
    assert positions == sorted(positions)


def test_load_errors_do_not_reveal_server_paths(storage_root):
    with pytest.raises(DatasetError) as info:
        DatasetCatalog(storage_root).load("blobs", "validation", max_rows=10, seed=0)
    assert "ROOT/datasets/blobs" in str(info.value) and str(storage_root) not in str(info.value)
