"""Which rows each worker reads in the per-epoch feature pass.

Training and the feature pass read differently on purpose:

- Training uses Ray Train's dataset shard (``ray.train.get_dataset_shard("train")``; with
  the default ``DataConfig`` that is ``streaming_split(world_size, equal=True)``). Equal
  shards keep the workers' step counts in step for DDP, and Ray Data drops the
  ``N mod world_size`` rows that do not fit: measured with ray 2.60 (tests/data/
  test_ray_dataset.py), N = 1001 gives 500 + 500 rows for 2 workers and 3 x 333 for 3, and
  which rows fall out depends on block arrival order (sometimes the last ids, sometimes
  ones in the middle, different between epochs). A few rows fewer per training epoch do not
  matter. ``equal=False`` keeps every row but balances nothing (on that small dataset one
  consumer took all 1001 rows), so it is no answer for the feature pass either. Seen through
  a TorchTrainer too (3 workers x 0.5 CPU, digits' 1438 training rows): 3 x 479 rows per
  epoch, one row dropped, while ``feature_pass_batches`` covered all 1438 ids once.
- The feature pass must give every id exactly one feature, whatever the worker count, so the
  clustering sees the whole training set. Each rank reads the contiguous id range
  ``shard_bounds(N, rank, world_size)`` straight from the Parquet files (row groups outside the
  range are skipped by their statistics), streaming decoded batches without Ray Data. The
  ranges partition 0..N-1 exactly, for uneven N and any world size, including more workers
  than rows (those ranks get an empty range).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pauc_ray.data.parquet_io import (
    DatasetInfo,
    SplitArrays,
    iter_id_range,
    read_dataset_info,
)

__all__ = ["feature_pass_batches", "shard_bounds", "shard_ids"]


def shard_bounds(num_ids: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank's contiguous id range; the ranges partition 0..num_ids-1.

    The first ``num_ids % world_size`` ranks get one id more than the others.
    """
    if num_ids < 0:
        raise ValueError(f"num_ids must be >= 0, got {num_ids}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    base, extra = divmod(num_ids, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_ids(num_ids: int, rank: int, world_size: int) -> np.ndarray:
    """(n_rank,) int64: the ids rank ``rank`` of ``world_size`` owns in the feature pass."""
    start, stop = shard_bounds(num_ids, rank, world_size)
    return np.arange(start, stop, dtype=np.int64)


def feature_pass_batches(
    directory: str | Path,
    split: str,
    rank: int,
    world_size: int,
    batch_size: int = 1024,
    info: DatasetInfo | None = None,
) -> Iterator[SplitArrays]:
    """Decoded batches of exactly the rows this rank owns (``shard_bounds``), no augmentation.

    Across ranks ``0..world_size-1`` every id of the split comes exactly once. The row count
    comes from ``dataset.json`` (``validate_dataset`` checks it matches the files).

    Example:
        >>> for batch in feature_pass_batches(d, "train", rank, world):  # doctest: +SKIP
        ...     feats = model.key_features(eval_transform(torch.from_numpy(batch.inputs)))
        ...     send(batch.ids, feats)
    """
    info = info or read_dataset_info(directory)
    if split not in info.counts:
        raise ValueError(f"split '{split}' not in {directory}'s dataset.json ({info.counts})")
    start, stop = shard_bounds(info.counts[split], rank, world_size)
    if start == stop:
        return iter(())
    return iter_id_range(directory, split, start, stop, batch_size=batch_size, info=info)
