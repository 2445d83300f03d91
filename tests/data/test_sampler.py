"""The per-epoch global permutation (pauc_ray.data.sampler) against DistributedSampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from pauc_ray.data.sampler import epoch_batches, epoch_permutation, steps_per_epoch, train_subset


def all_ranks(num_rows, epoch, world, batch, seed=0):
    return [
        epoch_batches(num_rows, seed=seed, epoch=epoch, rank=r, world_size=world, batch_size=batch)
        for r in range(world)
    ]


@pytest.mark.parametrize(("num_rows", "world", "batch"), [(1000, 2, 64), (1001, 3, 50), (37, 1, 8)])
def test_each_epoch_covers_every_row_at_most_once_and_drops_only_the_remainder(
    num_rows, world, batch
):
    for epoch in range(3):
        parts = all_ranks(num_rows, epoch, world, batch)
        rows = np.concatenate([p.ravel() for p in parts])
        steps = steps_per_epoch(num_rows, world, batch)
        assert all(p.shape == (steps, batch) for p in parts)  # every rank: the same steps
        assert len(np.unique(rows)) == len(rows) == world * steps * batch
        assert num_rows - len(rows) < world * (batch + 1)  # the documented drop
        assert rows.min() >= 0 and rows.max() < num_rows


def test_batches_change_from_epoch_to_epoch_and_repeat_with_the_seed():
    first, second = all_ranks(1000, 0, 2, 64), all_ranks(1000, 1, 2, 64)
    assert not np.array_equal(first[0], second[0])
    # batch composition changes, not only the order of the same batches
    assert {frozenset(b) for b in first[0]} != {frozenset(b) for b in second[0]}
    np.testing.assert_array_equal(all_ranks(1000, 1, 2, 64)[1], second[1])
    assert not np.array_equal(all_ranks(1000, 1, 2, 64, seed=1)[0], second[0])


def test_rows_dropped_differ_between_epochs():
    dropped = []
    for epoch in range(2):
        kept = np.concatenate([p.ravel() for p in all_ranks(1001, epoch, 2, 100)])
        dropped.append(set(range(1001)) - set(kept.tolist()))
    assert dropped[0] != dropped[1]


def test_ranks_interleave_one_permutation_as_distributed_sampler_does():
    """The same assignment rule as torch's DistributedSampler (drop_last=True): rank r takes
    positions r, r + W, ... of the epoch's permutation."""
    num_rows, world = 103, 3
    perm = epoch_permutation(num_rows, seed=5, epoch=2)
    for rank in range(world):
        sampler = DistributedSampler(range(num_rows), world, rank, shuffle=False, drop_last=True)
        want = perm[list(sampler)]
        got = epoch_batches(num_rows, seed=5, epoch=2, rank=rank, world_size=world, batch_size=1)
        np.testing.assert_array_equal(got.ravel(), want[: len(got)])
    assert sorted(perm.tolist()) == list(range(num_rows))
    assert torch.is_tensor(torch.from_numpy(perm))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rank"):
        epoch_batches(10, seed=0, epoch=0, rank=2, world_size=2, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        steps_per_epoch(10, 1, 0)
    with pytest.raises(ValueError, match="epoch"):
        epoch_permutation(10, 0, -1)


def test_train_subset_is_seeded_sorted_unique_and_apart_from_the_epoch_order():
    keep = train_subset(1000, 300, seed=3)
    assert keep.dtype == np.int64 and len(keep) == 300
    assert np.all(np.diff(keep) > 0) and 0 <= keep[0] and keep[-1] < 1000
    np.testing.assert_array_equal(keep, train_subset(1000, 300, seed=3))
    assert not np.array_equal(keep, train_subset(1000, 300, seed=4))
    # not the first rows of epoch 0's permutation: the subset has its own stream
    assert not np.array_equal(keep, np.sort(epoch_permutation(1000, 3, 0)[:300]))
    assert train_subset(1000, None, seed=3) is None and train_subset(1000, 1000, seed=3) is None
    with pytest.raises(ValueError, match="max_rows"):
        train_subset(1000, 0, seed=3)
