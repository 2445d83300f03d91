"""Reading through Ray Data, and what Ray Data's equal splits do with an uneven N."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pauc_ray.data.parquet_io import load_split_arrays

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def quiet_ray_data(ray_cluster):
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    return ray_cluster


@pytest.mark.parametrize("reader", ["tasks", "parquet"])
def test_read_split_decodes_every_id_once(quiet_ray_data, digits_dir, reader):
    from pauc_ray.data.ray_dataset import RayReadConfig, read_split

    ds = read_split(digits_dir, "train", RayReadConfig(batch_size=200, reader=reader))
    batches = list(ds.iter_batches(batch_size=256, batch_format="numpy"))
    ids = np.concatenate([b["id"] for b in batches])
    assert len(ids) == 1438 and len(np.unique(ids)) == 1438
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    assert images.dtype == np.uint8 and images.shape == (1438, 1, 8, 8)
    assert ids.dtype == np.int64 and labels.dtype == np.int64
    expected = load_split_arrays(digits_dir, "train")
    np.testing.assert_array_equal(images, expected.inputs[ids])
    np.testing.assert_array_equal(labels, expected.labels[ids])


def test_read_split_of_a_relative_path_reads_from_any_working_directory(
    quiet_ray_data, digits_dir, tmp_path, monkeypatch
):
    """Read tasks may run in another working directory (a `ray start` cluster, another
    node): the folder is resolved where the dataset is built."""
    from pauc_ray.data.ray_dataset import read_split

    monkeypatch.chdir(digits_dir.parent)
    ds = read_split(digits_dir.name, "train")
    monkeypatch.chdir(tmp_path)
    assert ds.count() == 1438


def _consume_in_parallel(iterators) -> list[np.ndarray]:
    """streaming_split's iterators must be read concurrently (one thread per consumer)."""

    def consume(it):
        parts = [b["id"] for b in it.iter_batches(batch_size=64, batch_format="numpy")]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    with ThreadPoolExecutor(len(iterators)) as pool:
        return list(pool.map(consume, iterators))


def test_equal_streaming_split_drops_the_remainder(quiet_ray_data, blobs_dir):
    """What TorchTrainer's default DataConfig does (``streaming_split(n, equal=True)``).

    Measured with ray 2.60: an uneven N loses ``N mod n`` rows per epoch (each shard gets
    ``N // n``), never duplicates one; ``equal=False`` keeps every row. Hence the feature pass
    uses ``sharding.shard_bounds`` instead.
    """
    from pauc_ray.data.ray_dataset import read_split

    ds = read_split(blobs_dir, "train")  # 1001 vectors
    shards = _consume_in_parallel(ds.streaming_split(3, equal=True))
    assert [len(s) for s in shards] == [333, 333, 333]
    ids = np.concatenate(shards)
    assert len(np.unique(ids)) == 999 and set(ids) <= set(range(1001))

    shards = _consume_in_parallel(ds.streaming_split(3, equal=False))
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(1001))
