"""The feature pass covers every id exactly once, whatever the worker count."""

from __future__ import annotations

import numpy as np
import pytest

from pauc_ray.data.parquet_io import iter_id_range, load_split_arrays
from pauc_ray.data.sharding import feature_pass_batches, shard_bounds, shard_ids


@pytest.mark.parametrize("num_ids", [0, 1, 7, 5000, 5001])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shards_partition_ids(num_ids, world_size):
    shards = [shard_ids(num_ids, rank, world_size) for rank in range(world_size)]
    np.testing.assert_array_equal(np.concatenate(shards), np.arange(num_ids))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert all(s.dtype == np.int64 for s in shards)


def test_shard_bounds_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(10, 3, 3)
    with pytest.raises(ValueError, match="world_size"):
        shard_bounds(10, 0, 0)


def test_iter_id_range_reads_exactly_the_range(digits_dir):
    whole = load_split_arrays(digits_dir, "train")
    batches = list(iter_id_range(digits_dir, "train", 480, 1020, batch_size=100))
    assert [len(b) for b in batches] == [100] * 5 + [40]
    ids = np.concatenate([b.ids for b in batches])
    np.testing.assert_array_equal(ids, np.arange(480, 1020))  # crosses a file boundary (500)
    inputs = np.concatenate([b.inputs for b in batches])
    np.testing.assert_array_equal(inputs, whole.inputs[480:1020])


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_feature_pass_covers_uneven_split_once(blobs_dir, world_size):
    whole = load_split_arrays(blobs_dir, "train")  # 1001 rows in 300-row files
    seen_ids, seen_x = [], []
    for rank in range(world_size):
        for batch in feature_pass_batches(blobs_dir, "train", rank, world_size, batch_size=128):
            seen_ids.append(batch.ids)
            seen_x.append(batch.inputs)
    ids = np.concatenate(seen_ids)
    np.testing.assert_array_equal(np.sort(ids), np.arange(1001))
    np.testing.assert_array_equal(np.concatenate(seen_x), whole.inputs[ids])


def test_more_workers_than_rows(tmp_path):
    from pauc_ray.data.sources import PrepareConfig, prepare

    out = tmp_path / "tiny"
    prepare("blobs", out, PrepareConfig(classes=2, samples_per_class=1, test_fraction=0))
    per_rank = [
        sum(len(b) for b in feature_pass_batches(out, "train", rank, 4)) for rank in range(4)
    ]
    assert per_rank == [1, 1, 0, 0]
