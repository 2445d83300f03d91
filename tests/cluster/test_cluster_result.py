"""ClusterResult / MultiClusterResult: immutability, id lookup, checkpoint round trip."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from cluster import ClusterResult, KMeansConfig, MultiClusterResult, cluster_features


@pytest.fixture
def result(rng) -> MultiClusterResult:
    x = rng.standard_normal((60, 4)).astype(np.float32)
    ids = rng.permutation(np.arange(100, 160))
    return cluster_features(x, ids, KMeansConfig(num_clusters=(3, 6), niter=5, nredo=1))


def _assert_same(a: MultiClusterResult, b: MultiClusterResult) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.num_clusters == b.num_clusters
    for ca, cb in zip(a.clusterings, b.clusterings, strict=True):
        for name in ("centroids", "assignments", "concentration", "counts"):
            va, vb = getattr(ca, name), getattr(cb, name)
            assert va.dtype == vb.dtype
            np.testing.assert_array_equal(va, vb)
            assert not vb.flags.writeable
        assert (ca.num_clusters, ca.inertia, ca.seconds, ca.iterations, ca.passes) == (
            cb.num_clusters,
            cb.inertia,
            cb.seconds,
            cb.iterations,
            cb.passes,
        )


def test_state_round_trip(result):
    state = result.to_state()
    assert state["num_clusterings"] == 2 and state["k1_num_clusters"] == 6
    assert all(isinstance(v, np.ndarray | int | float) for v in state.values())
    _assert_same(result, MultiClusterResult.from_state(state))


def test_state_round_trip_through_a_weights_only_torch_checkpoint(result):
    state = {
        key: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
        for key, v in result.to_state().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    _assert_same(result, MultiClusterResult.from_state(loaded))


def test_a_state_saved_before_passes_existed_loads_with_passes_unknown(result):
    state = {k: v for k, v in result.to_state().items() if not k.endswith("_passes")}
    restored = MultiClusterResult.from_state(state)
    assert [c.passes for c in restored.clusterings] == [0, 0]
    assert all(c.passes > 0 for c in result.clusterings)


def test_from_state_copies_its_input(result):
    state = result.to_state()
    restored = MultiClusterResult.from_state(state)
    state["k0_assignments"][:] = -1
    assert (restored.clusterings[0].assignments >= 0).all()


def test_from_state_rejects_missing_keys_and_other_versions(result):
    state = result.to_state()
    del state["k1_concentration"]
    with pytest.raises(ValueError, match="missing key 'k1_concentration'"):
        MultiClusterResult.from_state(state)
    with pytest.raises(ValueError, match="format_version 99"):
        MultiClusterResult.from_state({**result.to_state(), "format_version": 99})


def test_assignments_for(result):
    c0, c1 = result.clusterings
    query = np.array([159, 100, 130, 100])
    rows = np.searchsorted(result.ids, query)
    out = result.assignments_for(query)
    assert out.shape == (2, 4) and out.dtype == np.int64
    np.testing.assert_array_equal(out, np.stack([c0.assignments[rows], c1.assignments[rows]]))
    assert result.assignments_for(np.array([], dtype=np.int64)).shape == (2, 0)
    np.testing.assert_array_equal(result.assignments_for(torch.tensor([130])), out[:, 2:3])


@pytest.mark.parametrize("unknown", [99, 160, 125_000, -1])
def test_assignments_for_unknown_id_names_it(result, unknown):
    with pytest.raises(ValueError, match=rf"1 id\(s\) were not clustered, e.g. \[{unknown}\]"):
        result.assignments_for(np.array([100, unknown]))


def test_assignments_for_rejects_non_integer_ids(result):
    with pytest.raises(ValueError, match="1-D integer array"):
        result.assignments_for(np.array([100.0]))


def test_results_are_frozen_and_validated(result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.clusterings[0].inertia = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="strictly increasing"):
        MultiClusterResult(ids=np.array([2, 1]), clusterings=())
    c = result.clusterings[0]
    with pytest.raises(ValueError, match="clustering 0 has 60 assignments for 2 ids"):
        MultiClusterResult(ids=np.array([1, 2]), clusterings=(c,))
    with pytest.raises(ValueError, match="concentration must have num_clusters=3 rows"):
        dataclasses.replace(c, concentration=np.ones(4))
    with pytest.raises(ValueError, match="counts sum to"):
        dataclasses.replace(c, counts=c.counts + 1)
    assert isinstance(dataclasses.replace(c, seconds=1.0), ClusterResult)
