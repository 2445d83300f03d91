"""lloyd: the same clustering as a slow float64 reference from the same start; empty clusters."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from cluster.lloyd import assign, cluster_means, fill_empty_clusters, initial_centroids, lloyd


def reference_lloyd(x: np.ndarray, init: np.ndarray, niter: int):
    """Textbook Lloyd in float64 with explicit loops: (centroids, the last pass's labels, the
    centroids that pass searched, iterations, converged)."""
    x64, centroids = x.astype(np.float64), init.astype(np.float64)
    k = len(centroids)
    previous = None
    for iteration in range(1, niter + 1):
        dist = np.array([[((p - c) ** 2).sum() for c in centroids] for p in x64])
        labels = dist.argmin(axis=1)
        searched, raw_labels = centroids, labels.copy()
        if previous is not None and (labels == previous).all():
            return centroids, labels, searched, iteration, True
        nearest = dist[np.arange(len(x)), labels]
        for j in range(k):  # an empty cluster takes the farthest point of a cluster with 2+
            if not (labels == j).any():
                for i in sorted(range(len(x)), key=lambda i: -nearest[i]):
                    if (labels == labels[i]).sum() > 1:
                        labels[i] = j
                        break
        centroids = np.array([x64[labels == j].mean(axis=0) for j in range(k)])
        previous = labels
    return centroids, raw_labels, searched, niter, False


@pytest.mark.parametrize("niter", [1, 4, 50])
def test_matches_the_reference_from_the_same_start(rng, niter):
    x = rng.standard_normal((120, 5)).astype(np.float32)
    init = initial_centroids(x, 6, np.random.default_rng(7))
    result = lloyd(x, 6, niter, np.random.default_rng(7), faiss.IndexFlatL2(5))

    centroids, labels, searched, iterations, converged = reference_lloyd(x, init, niter)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(result.centroids, centroids, rtol=1e-5, atol=1e-6)
    assert (result.iterations, result.converged) == (iterations, converged)
    assert result.converged == (niter == 50)
    # the last pass's distances are to the centroids that pass searched (the returned ones
    # only when converged)
    d2 = ((x[:, None, :] - searched[None]) ** 2).sum(-1)
    np.testing.assert_allclose(result.dist_sq, d2.min(axis=1), rtol=1e-4, atol=1e-5)
    assert result.objective == pytest.approx(float(result.dist_sq.sum()), rel=1e-5)


def test_a_converged_result_is_a_fixed_point(rng):
    x = rng.standard_normal((200, 4)).astype(np.float32)
    result = lloyd(x, 5, 100, np.random.default_rng(0), faiss.IndexFlatL2(4))
    assert result.converged and result.iterations < 100
    np.testing.assert_allclose(
        cluster_means(x, result.labels, 5), result.centroids, rtol=1e-5, atol=1e-6
    )
    labels, _ = assign(x, result.centroids, faiss.IndexFlatL2(4))
    np.testing.assert_array_equal(labels, result.labels)


def test_empty_clusters_take_the_farthest_points_of_clusters_that_keep_one():
    # cluster 1 is empty; point 2 is the farthest but alone in cluster 2, so point 1 moves
    labels = np.array([0, 0, 2, 0])
    dist_sq = np.array([0.1, 0.5, 0.9, 0.2], dtype=np.float32)
    filled = fill_empty_clusters(labels, dist_sq, 3)
    np.testing.assert_array_equal(filled, [0, 1, 2, 0])
    np.testing.assert_array_equal(labels, [0, 0, 2, 0])  # the input is not changed
    assert fill_empty_clusters(filled, dist_sq, 3) is filled  # nothing empty: no copy


def test_duplicate_points_leave_no_cluster_empty():
    # 3 distinct values among 30 points, 5 clusters: identical centroids leave some empty
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    result = lloyd(x, 5, 20, np.random.default_rng(1), faiss.IndexFlatL2(3))
    assert np.isfinite(result.centroids).all()
    assert result.objective == pytest.approx(0.0, abs=1e-6)
