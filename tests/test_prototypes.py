"""pauc_ray.prototypes: one epoch's clustering, looked up per batch by sample id."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cluster.result import ClusterResult, MultiClusterResult
from pauc_ray.prototypes import EpochPrototypes


def _clustering(ids: np.ndarray, k: int, dim: int, rng) -> ClusterResult:
    assignments = rng.integers(0, k, len(ids))
    centroids = rng.normal(size=(k, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return ClusterResult(
        num_clusters=k,
        centroids=centroids,
        assignments=assignments,
        concentration=rng.uniform(0.05, 0.5, k).astype(np.float32),
        counts=np.bincount(assignments, minlength=k),
        inertia=1.0,
        seconds=0.0,
        iterations=1,
    )


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(1000, 60, replace=False))  # sparse, as a worker's share is
    return MultiClusterResult(ids, tuple(_clustering(ids, k, 8, rng) for k in (3, 5, 7)))


def test_batch_view_matches_a_lookup_by_id(result):
    protos = EpochPrototypes.from_result(result)
    assert protos.num_clusters == (3, 5, 7)
    batch_ids = torch.as_tensor(result.ids[[17, 3, 59, 3, 0]])
    sets = protos.for_batch(batch_ids)
    row_of = {int(i): row for row, i in enumerate(result.ids)}  # the slow obvious reference
    for clustering, pset in zip(result.clusterings, sets, strict=True):
        want = [int(clustering.assignments[row_of[int(i)]]) for i in batch_ids]
        assert pset.assignment.tolist() == want
        np.testing.assert_array_equal(pset.prototypes.numpy(), clustering.centroids)
        np.testing.assert_array_equal(pset.concentration.numpy(), clustering.concentration)


def test_ids_missing_from_the_clustering_are_named(result):
    protos = EpochPrototypes.from_result(result)
    absent = int(np.setdiff1d(np.arange(1001), result.ids)[0])
    batch = torch.as_tensor([int(result.ids[0]), absent])
    with pytest.raises(ValueError, match=rf"\[{absent}\].*not in this epoch's clustering"):
        protos.for_batch(batch)
    beyond = torch.as_tensor([int(result.ids[-1]) + 1])  # past the last id: clamped lookup
    with pytest.raises(ValueError, match="not in this epoch's clustering"):
        protos.for_batch(beyond)


def test_tensors_are_copies_not_views_of_the_result(result):
    protos = EpochPrototypes.from_result(result)
    protos.assignments.zero_()
    assert result.clusterings[1].assignments.max() > 0
