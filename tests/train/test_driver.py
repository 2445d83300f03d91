"""Driver pieces that need no running cluster."""

from __future__ import annotations

import pytest

from pauc_ray.data.sampler import per_worker_batch
from pauc_ray.train.driver import _existing_cluster_address


def test_ray_address_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert _existing_cluster_address() == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert _existing_cluster_address() is None  # start a private local cluster


def test_no_address_and_no_ray_start_cluster_means_start_one(monkeypatch):
    """Even while some other process runs a private ``ray.init()`` cluster."""
    import ray._private.services as services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: None)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: ["127.0.0.1:9999"])
    assert _existing_cluster_address() is None


@pytest.mark.parametrize(
    ("batch", "world", "groups", "expected"),
    [(256, 2, 2, 128), (256, 3, 2, 84), (100, 1, 1, 100), (7, 2, 2, 2)],
)
def test_per_worker_batch_keeps_the_global_batch_and_equal_bn_groups(
    batch, world, groups, expected
):
    assert per_worker_batch(batch, world, groups) == expected


def test_a_train_subset_of_a_split_that_streams_is_refused_before_ray_runs(
    blobs_dir, tmp_path, monkeypatch
):
    from pauc_ray.train import driver
    from pauc_ray.train.config import TrainConfig

    monkeypatch.setattr(driver, "IN_MEMORY_LIMIT_BYTES", 1)  # every split "streams"
    config = TrainConfig(
        dataset=f"parquet:{blobs_dir}", storage=str(tmp_path), name="big", train_max_samples=100
    )
    with pytest.raises(ValueError, match="train_max_samples needs a train split that fits"):
        driver.run_training(config)
