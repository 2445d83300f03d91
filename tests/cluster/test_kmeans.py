"""cluster_features: recovery, consistency with faiss and brute force, ordering, errors."""

from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from cluster import KMeansConfig, cluster_features, concentration
from cluster.lloyd import lloyd

SMALL = KMeansConfig(num_clusters=(4,), niter=10, nredo=2, seed=3)


def test_recovers_well_separated_blobs(make_blobs):
    x, truth = make_blobs(num_blobs=6, per_blob=40, dim=16)
    result = cluster_features(x, np.arange(len(x)), KMeansConfig(num_clusters=(6,)))

    (c,) = result.clusterings
    assert adjusted_rand_score(truth, c.assignments) == 1.0
    np.testing.assert_array_equal(np.sort(c.counts), np.full(6, 40))
    np.testing.assert_allclose(np.linalg.norm(c.centroids, axis=1), 1.0, rtol=1e-6)
    assert c.centroids.dtype == np.float32 and c.centroids.shape == (6, 16)
    assert c.assignments.dtype == np.int64 and c.counts.dtype == np.int64
    assert c.concentration.dtype == np.float32
    assert c.concentration.mean() == pytest.approx(0.2, rel=1e-5)
    # each prototype points at its blob's centre
    for j in range(6):
        members = x[c.assignments == j]
        centre = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
        assert centre @ c.centroids[j] > 0.999


def test_keeps_the_best_restart_and_assigns_with_its_distances(rng):
    """Clustering m = 1 is seeded seed + 1: its restarts are lloyd() runs seeded (seed + 1, r);
    the lowest objective is kept, and inertia and phi follow from its final distances."""
    x = rng.standard_normal((300, 8)).astype(np.float32)
    config = KMeansConfig(num_clusters=(3, 7), niter=3, nredo=2, seed=5)
    result = cluster_features(x, np.arange(300), config)

    restarts = [
        lloyd(x, 7, 3, np.random.default_rng([config.seed + 1, r]), faiss.IndexFlatL2(8))
        for r in range(2)
    ]
    best = min(restarts, key=lambda r: r.objective)
    assert not best.converged  # so the final assignment is a fresh search against its centroids
    raw = best.centroids.astype(np.float64)

    c = result.clusterings[1]
    d2 = ((x[:, None, :].astype(np.float64) - raw[None]) ** 2).sum(-1)  # N x K
    nearest = d2.min(axis=1)
    np.testing.assert_array_equal(c.assignments, d2.argmin(axis=1))
    assert c.inertia == pytest.approx(nearest.sum(), rel=1e-5)
    np.testing.assert_allclose(
        c.centroids, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(c.counts, np.bincount(c.assignments, minlength=7))
    expected_phi = concentration(np.sqrt(nearest), c.assignments, 7, config.concentration_mean)
    np.testing.assert_allclose(c.concentration, expected_phi, rtol=1e-4)
    assert c.seconds > 0
    assert c.iterations == 2 * 3  # two restarts of three iterations, none converged...
    assert c.passes == 2 * 3 + 1  # ...so the kept one's centroids get one more assignment pass


def test_a_subsample_per_restart_then_one_pass_over_all_points(make_blobs):
    x, truth = make_blobs(num_blobs=4, per_blob=50, dim=8)
    config = KMeansConfig(num_clusters=(4,), nredo=2, max_points_per_centroid=10)
    (c,) = cluster_features(x, np.arange(len(x)), config).clusterings
    assert adjusted_rand_score(truth, c.assignments) == 1.0
    assert c.passes == c.iterations + 1  # restarts converged on 40 points; one pass over 200
    assert c.counts.sum() == 200


def test_iterations_stop_once_converged(make_blobs):
    x, _ = make_blobs(num_blobs=5, per_blob=30, dim=8)
    config = KMeansConfig(num_clusters=(5,), niter=50, nredo=3)
    (c,) = cluster_features(x, np.arange(len(x)), config).clusterings
    assert 3 <= c.iterations < 50  # each restart stops within a few iterations
    assert c.passes == c.iterations  # converged: the last pass's assignment is the final one


def test_several_k_at_once(rng):
    x = rng.standard_normal((200, 5))  # float64 input is converted
    result = cluster_features(x, np.arange(200), KMeansConfig(num_clusters=(2, 5, 11), nredo=1))
    assert result.num_clusters == (2, 5, 11)
    assert result.num_samples == 200
    for k, c in zip((2, 5, 11), result.clusterings):
        assert c.num_clusters == k
        assert c.centroids.shape == (k, 5) and c.concentration.shape == (k,)
        assert c.counts.sum() == 200 and c.assignments.max() < k
    # inertia falls as K grows
    inertias = [c.inertia for c in result.clusterings]
    assert inertias[0] > inertias[1] > inertias[2]


def test_deterministic_given_the_seed(rng):
    x = rng.standard_normal((250, 6)).astype(np.float32)
    ids = np.arange(250)
    first = cluster_features(x, ids, SMALL)
    second = cluster_features(x, ids, SMALL)
    other_seed = cluster_features(x, ids, KMeansConfig(num_clusters=(4,), niter=10, nredo=2))
    for a, b in zip(first.clusterings, second.clusterings):
        np.testing.assert_array_equal(a.centroids, b.centroids)
        np.testing.assert_array_equal(a.assignments, b.assignments)
        np.testing.assert_array_equal(a.concentration, b.concentration)
        assert a.inertia == b.inertia
    assert not np.array_equal(first.clusterings[0].centroids, other_seed.clusterings[0].centroids)


def test_input_order_does_not_matter(rng):
    x = rng.standard_normal((240, 6)).astype(np.float32)
    ids = 10 * np.arange(240) + 7  # sparse ids
    perm = rng.permutation(240)
    ordered = cluster_features(x, ids, SMALL)
    shuffled = cluster_features(x[perm], ids[perm], SMALL)

    np.testing.assert_array_equal(shuffled.ids, ids)
    np.testing.assert_array_equal(shuffled.assignments_for(ids), ordered.assignments_for(ids))
    a, b = ordered.clusterings[0], shuffled.clusterings[0]
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.concentration, b.concentration)
    # the sorted result lines up with the caller's rows through assignments_for
    np.testing.assert_array_equal(shuffled.assignments_for(ids[perm])[0], a.assignments[perm])


def test_results_are_read_only(rng):
    result = cluster_features(rng.standard_normal((50, 3)), np.arange(50), SMALL)
    c = result.clusterings[0]
    for array in (result.ids, c.centroids, c.assignments, c.concentration, c.counts):
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        c.centroids[0, 0] = 1.0


def test_logs_what_it_did(rng, caplog):
    with caplog.at_level(logging.INFO, logger="cluster.kmeans"):
        cluster_features(rng.standard_normal((30, 3)), np.arange(30), SMALL)
    text = caplog.text
    assert "K=4" in text and "inertia" in text and "CPU" in text
    # 30 points >= 4 clusters * min_points_per_centroid=3, so no small-cluster warning
    assert "min_points_per_centroid" not in text


def test_warns_through_logging_when_clusters_are_small(rng, caplog):
    with caplog.at_level(logging.WARNING, logger="cluster.kmeans"):
        cluster_features(rng.standard_normal((10, 3)), np.arange(10), SMALL)
    assert any("min_points_per_centroid=3" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("num_threads", "used"), [(None, 1), (1, 1), (3, 3)])
def test_num_threads_is_used_and_restored(rng, caplog, num_threads, used):
    """None picks one thread for a problem this small; faiss's setting is restored after."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        with caplog.at_level(logging.INFO, logger="cluster.kmeans"):
            cluster_features(
                rng.standard_normal((40, 3)), np.arange(40), SMALL, num_threads=num_threads
            )
        assert f"CPU, {used} threads" in caplog.text
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


def test_expected_ids_present_passes(rng):
    x = rng.standard_normal((20, 3))
    result = cluster_features(x, np.arange(20)[::-1], SMALL, expected_ids=np.arange(20))
    np.testing.assert_array_equal(result.ids, np.arange(20))


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="this machine has a GPU")
def test_use_gpu_without_gpu_is_a_clear_error(rng):
    with pytest.raises(RuntimeError, match="use_gpu=True"):
        cluster_features(
            rng.standard_normal((20, 3)), np.arange(20), KMeansConfig((4,), use_gpu=True)
        )


def _bad_cases():
    x = np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32)
    ids = np.arange(20)
    with_nan = x.copy()
    with_nan[[3, 8], 1] = np.nan
    with_nan[5, 0] = np.inf
    dupes = ids.copy()
    dupes[[4, 9, 12]] = [0, 1, 1]
    cfg = SMALL
    return [
        (
            "1-D features",
            x[:, 0],
            ids,
            cfg,
            {},
            r"features must be 2-D \(N, D\), got shape \(20,\)",
        ),
        ("no columns", x[:, :0], ids, cfg, {}, "at least one column"),
        ("strings", x.astype(str), ids, cfg, {}, "features must be real numbers"),
        ("too few points", x[:3], ids[:3], cfg, {}, "3 rows, fewer than the largest K=4"),
        ("nan rows", with_nan, ids, cfg, {}, r"3 row\(s\) with NaN or inf .*\[3, 5, 8\]"),
        ("2-D ids", x, ids[:, None], cfg, {}, "ids must be 1-D"),
        ("short ids", x, ids[:-1], cfg, {}, r"one id per row of features \(20\)"),
        ("float ids", x, ids.astype(float), cfg, {}, "ids must be integers"),
        ("duplicates", x, dupes, cfg, {}, r"2 repeated id\(s\), e.g. \[0, 1\]"),
        (
            "missing",
            x,
            ids,
            cfg,
            {"expected_ids": np.arange(25)},
            r"lack 5 of the 25 expected_ids, e.g. \[20, 21, 22, 23, 24\]",
        ),
        ("bad expected", x, ids, cfg, {"expected_ids": np.ones((2, 2), int)}, "expected_ids"),
        ("empty K", x, ids, KMeansConfig(num_clusters=()), {}, "at least one K"),
        ("K < 1", x, ids, KMeansConfig(num_clusters=(3, 0)), {}, r"all be >= 1, got \(3, 0\)"),
        ("float K", x, ids, KMeansConfig(num_clusters=(2.5,)), {}, "must hold integers"),
        ("niter", x, ids, KMeansConfig((2,), niter=0), {}, "config.niter must be >= 1"),
        ("mean", x, ids, KMeansConfig((2,), concentration_mean=0), {}, "concentration_mean"),
        ("unset", x, ids, KMeansConfig((2,), concentration_mean=None), {}, "concentration_mean"),
        ("threads", x, ids, cfg, {"num_threads": 0}, "num_threads"),
        ("config", x, ids, {"num_clusters": (2,)}, {}, "config must be a KMeansConfig"),
    ]


@pytest.mark.parametrize(
    ("features", "ids", "config", "kwargs", "match"),
    [case[1:] for case in _bad_cases()],
    ids=[case[0] for case in _bad_cases()],
)
def test_bad_input_raises_value_error(features, ids, config, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cluster_features(features, ids, config, **kwargs)
