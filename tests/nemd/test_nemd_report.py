"""nemd_report: what it computes, what it keeps, and what it rejects."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from nemd_cases import SphereCase, upper

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd import nemd_report, sphere_clusters
from pauc_ray.nemd.sampling import sample_pairs, sample_points, unrank_pairs

ALL = NEMDConfig(max_points=None, max_pairs=None)


def _without_time(report) -> dict:
    out = report.to_dict()
    out.pop("seconds")
    return out


def _two_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x, y = sphere_clusters(5, 40, 4, spread=0.5, seed=seed)
    return x * 3.0, y  # off the sphere on purpose: the report normalises


def test_matrix_matches_pot_and_is_symmetric(sphere_case: SphereCase) -> None:
    report = nemd_report(
        sphere_case.embeddings, sphere_case.assignments, ALL, return_matrix=True, device="cpu"
    )
    m = report.matrix
    assert m.shape == (6, 6)
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_array_equal(np.diag(m), 0.0)
    assert np.max(np.abs(upper(m) / upper(sphere_case.pot_sinkhorn) - 1)) < 0.01
    assert np.max(np.abs(upper(m) / upper(sphere_case.emd) - 1)) < 0.03
    assert report.nemd == pytest.approx(upper(m).mean(), rel=1e-12)
    off = m + np.diag(np.full(6, np.inf))
    assert report.nemd_nn == pytest.approx(off.min(axis=1).mean(), rel=1e-12)
    assert report.nemd_nn <= report.nemd
    assert report.sizes == (100, 110, 120, 130, 140, 150)
    assert (report.pairs_evaluated, report.pairs_total) == (15, 15)
    assert (report.method, report.device, report.epsilon) == ("sinkhorn", "cpu", 0.005)


def test_exact_matches_pot_emd(sphere_case: SphereCase) -> None:
    report = nemd_report(sphere_case.embeddings, sphere_case.assignments, ALL, exact=True)
    assert report.nemd == pytest.approx(upper(sphere_case.emd).mean(), rel=1e-9)
    assert (report.method, report.device, report.epsilon) == ("emd", "cpu", None)
    assert report.matrix is None


def test_two_samples_of_one_distribution_give_a_small_value() -> None:
    # Not 0: two independent samples of n points differ, and W1 between two empirical
    # measures of one law shrinks only like n^(-1/2) in 1-D (n^(-1/d) in d dimensions) -- plus
    # the entropic bias. On the circle, 2 x 200 draws of a cluster of spread 0.3 give 0.024
    # (exact EMD 0.023), against 0.74 for a cluster with another centre; 0.08 leaves margin for
    # other seeds.
    x, _ = sphere_clusters(1, 400, 2, spread=0.3, seed=4)
    other, _ = sphere_clusters(1, 200, 2, spread=0.3, seed=5)
    embeddings = np.concatenate([x, other])
    same = nemd_report(embeddings[:400], np.repeat([0, 1], 200), ALL, device="cpu")
    assert 0.0 < same.nemd < 0.08
    different = nemd_report(embeddings[200:], np.repeat([0, 1], 200), ALL, device="cpu")
    assert different.nemd > 10 * same.nemd


def test_same_distribution_in_high_dimension_is_below_different_clusters() -> None:
    # In 128-D two finite samples of one cluster are far apart point by point (W1 close to the
    # within-cluster spread), so only the ordering against different clusters is asserted.
    x, y = sphere_clusters(2, 200, 128, spread=0.6, seed=2)
    halves = np.where(y == 0, np.arange(len(y)) % 2, 2 + np.arange(len(y)) % 2)
    report = nemd_report(x, halves, ALL, return_matrix=True, device="cpu")
    m = report.matrix
    assert m[0, 1] < 0.5 * m[0, 2] and m[2, 3] < 0.5 * m[1, 3]


def test_invariant_to_row_order_ids_and_scale() -> None:
    x, y = _two_blobs()
    base = nemd_report(x, y, ALL, device="cpu")
    perm = np.random.default_rng(1).permutation(len(y))
    relabel = np.array([40, -3, 7, 1000, 5])[y]  # ids need not be 0..K-1
    moved = nemd_report(0.5 * x[perm], relabel[perm], ALL, device="cpu")
    assert moved.nemd == pytest.approx(base.nemd, rel=1e-5)
    assert moved.nemd_nn == pytest.approx(base.nemd_nn, rel=1e-5)
    assert moved.prototype_ids == (-3, 5, 7, 40, 1000)


def test_subsampling_is_seeded_and_reported() -> None:
    x, y = sphere_clusters(8, 60, 4, spread=0.5, seed=3)
    config = NEMDConfig(max_points=25, max_pairs=9, seed=11)
    first = nemd_report(x, y, config, return_matrix=True, device="cpu")
    again = nemd_report(x, y, config, return_matrix=True, device="cpu")
    assert _without_time(first) == _without_time(again)
    assert first.sizes == (60,) * 8  # before subsampling
    assert (first.max_points, first.max_pairs, first.seed) == (25, 9, 11)
    assert (first.pairs_evaluated, first.pairs_total) == (9, 28)
    evaluated = ~np.isnan(first.matrix[np.triu_indices(8, 1)])
    assert evaluated.sum() == 9
    other = nemd_report(x, y, dataclasses.replace(config, seed=12), return_matrix=True)
    assert not np.array_equal(np.isnan(other.matrix), np.isnan(first.matrix))


def test_point_and_pair_samples() -> None:
    members = [np.arange(10), np.arange(10, 13)]
    kept = sample_points(members, 4, seed=0)
    assert len(kept[0]) == 4 and set(kept[0]) <= set(members[0])
    assert np.all(np.diff(kept[0]) > 0)
    np.testing.assert_array_equal(kept[1], members[1])
    np.testing.assert_array_equal(sample_points(members, 4, 0)[0], kept[0])
    pairs = sample_pairs(20, 30, seed=0)
    assert pairs.shape == (30, 2) and np.all(pairs[:, 0] < pairs[:, 1])
    assert len({tuple(p) for p in pairs.tolist()}) == 30
    assert sample_pairs(4, None, seed=0).tolist() == [
        [0, 1],
        [0, 2],
        [0, 3],
        [1, 2],
        [1, 3],
        [2, 3],
    ]


@pytest.mark.parametrize("k", [2, 3, 7, 30])
def test_unrank_pairs_matches_triu_indices(k: int) -> None:
    i, j = np.triu_indices(k, 1)
    np.testing.assert_array_equal(unrank_pairs(np.arange(len(i)), k), np.stack([i, j], 1))


def test_unrank_pairs_for_huge_k() -> None:
    k = 200_000
    total = k * (k - 1) // 2
    got = unrank_pairs(np.array([0, k - 2, k - 1, total - 2, total - 1]), k)
    assert got.tolist() == [[0, 1], [0, k - 1], [1, 2], [k - 3, k - 1], [k - 2, k - 1]]


def test_to_dict_is_json_with_null_for_missing_pairs() -> None:
    x, y = _two_blobs()
    report = nemd_report(x, y, NEMDConfig(max_pairs=3), return_matrix=True, device="cpu")
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["matrix"][0][0] == 0.0
    assert sum(v is None for row in data["matrix"] for v in row) == 2 * (10 - 3)
    assert set(data) >= {"nemd", "nemd_nn", "sizes", "prototype_ids", "seconds", "device"}


def test_accepts_torch_tensors() -> None:
    x, y = _two_blobs()
    from_numpy = nemd_report(x, y, ALL, device="cpu")
    from_torch = nemd_report(torch.from_numpy(x).float(), torch.from_numpy(y), ALL, device="cpu")
    assert from_torch.nemd == pytest.approx(from_numpy.nemd, rel=1e-5)


def _bad_inputs() -> list:
    x, y = _two_blobs()
    nan = x.copy()
    nan[[3, 8], 1] = np.nan
    inf = x.copy()
    inf[5, 0] = np.inf
    zero = x.copy()
    zero[7] = 0.0
    return [
        (x[:, 0], y, "embeddings must be 2-D"),
        (x[None], y, "embeddings must be 2-D"),
        (x, y[:, None], "assignments must be 1-D"),
        (x, y[:-1], "199 entries but embeddings has 200 rows"),
        (nan, y, r"NaN or inf in 2 of 200 rows \(first: 3, 8\)"),
        (inf, y, "NaN or inf in 1 of 200 rows"),
        (zero, y, "zero norm in 1 of 200 rows"),
        (x, np.zeros_like(y), "1 distinct prototype"),
        (x, y + 0.5, "integer prototype ids"),
        (x.astype(str), y, "real numeric"),
    ]


@pytest.mark.parametrize(("embeddings", "assignments", "match"), _bad_inputs())
def test_bad_inputs_raise(embeddings, assignments, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nemd_report(embeddings, assignments, device="cpu")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("inf")}, "epsilon"),
        ({"max_points": 0}, "max_points"),
        ({"max_pairs": 0}, "max_pairs"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": 0.0}, "tol"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise(changes: dict, match: str) -> None:
    x, y = _two_blobs()
    with pytest.raises(ValueError, match=match):
        nemd_report(x, y, dataclasses.replace(NEMDConfig(), **changes), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_without_a_gpu_raises() -> None:
    x, y = _two_blobs()
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        nemd_report(x, y, device="cuda")
