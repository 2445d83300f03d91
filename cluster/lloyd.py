"""Lloyd's k-means with faiss's exact nearest-centroid search as the assignment step.

Why not ``faiss.Clustering``: it keeps each point's assignment to itself, so a caller cannot stop
when the assignment stops changing (faiss stops once the objective stops falling, which it sees
one pass later) nor reuse the last assignment as the final one (a caller has to search all
points again). Each of those costs one full pass over the data per restart, and the passes are
the whole cost: the distance search is ~95 % of a faiss k-means iteration here (its
``iteration_stats``, ``benchmarks/RESULTS.md``). This loop keeps faiss's search (sgemm blocks and
a fused argmin, on the GPU when the index is a GPU index) and does the rest in numpy/scipy:

- assignment: ``index.search(x, 1)`` against the current centroids (squared L2 distances);
- stop when no point changed cluster (scikit-learn's "strict convergence"): the centroids are
  then a fixed point and this pass's assignment and distances are the final ones, free;
- empty clusters take the points farthest from their centroids (scikit-learn's rule), one each,
  from clusters that keep at least one member;
- update: per-cluster means as one sparse one-hot product (scipy), ~1.5 ms for 60k x 128
  on one thread whatever K, against ~200 ms for a search of 100k x 128 -> 1000
  (``np.add.at``: ~86 ms);
- a restart that reaches ``niter`` without converging returns its last centroids with the
  assignment of its last pass, made to the centroids before them; restarts are compared by
  that pass's objective (as faiss does), and the caller assigns the points to the chosen
  centroids with one more search (scikit-learn's final E-step), once per clustering.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import scipy.sparse

__all__ = [
    "LloydResult",
    "assign",
    "cluster_means",
    "fill_empty_clusters",
    "initial_centroids",
    "lloyd",
]


@dataclass(frozen=True)
class LloydResult:
    """One k-means restart.

    Attributes:
        centroids: (K, D) float32 raw centroids.
        labels: (N,) int64 the last pass's nearest centroid of each point: to ``centroids``
            when ``converged``, else to the centroids of the iteration before.
        dist_sq: (N,) float32 squared L2 distance to it (faiss's, may be slightly negative).
        iterations: assignment passes over the points (at most ``niter``).
        converged: the last pass changed no assignment (``centroids`` are a fixed point).
    """

    centroids: np.ndarray
    labels: np.ndarray
    dist_sq: np.ndarray
    iterations: int
    converged: bool

    @property
    def objective(self) -> float:
        """Sum of the last pass's squared distances (the inertia of ``labels``), float64."""
        return float(np.maximum(self.dist_sq, 0.0).sum(dtype=np.float64))


def assign(
    x: np.ndarray, centroids: np.ndarray, index: faiss.Index
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 nearest centroid and (N,) float32 squared distance of each row of ``x``.

    ``index`` is an empty-or-not exact L2 index of the right dimension; it is reset and ends
    holding ``centroids``.
    """
    index.reset()
    index.add(centroids)
    dist_sq, labels = index.search(x, 1)
    return labels[:, 0], dist_sq[:, 0]


def cluster_means(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(K, D) float32 mean of the rows of ``x`` in each cluster (every cluster non-empty)."""
    n = len(x)
    # (N, K) one-hot built from its CSR arrays directly (row i holds one 1 at column
    # labels[i]): half the time of going through COO (row, column) pairs
    one_hot = scipy.sparse.csr_matrix(
        (np.ones(n, dtype=np.float32), labels, np.arange(n + 1)), shape=(n, k)
    )
    sums = np.asarray(one_hot.T @ x, dtype=np.float32)
    counts = np.bincount(labels, minlength=k).astype(np.float32)
    return sums / counts[:, None]


def fill_empty_clusters(labels: np.ndarray, dist_sq: np.ndarray, k: int) -> np.ndarray:
    """``labels`` with each empty cluster given one point: the farthest from its centroid among
    clusters that keep a member. Returns ``labels`` itself when no cluster is empty, else a copy.
    """
    counts = np.bincount(labels, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if len(empty) == 0:
        return labels
    labels = labels.copy()
    filled = 0
    for i in np.argsort(-dist_sq, kind="stable"):  # N >= K, so a donor always exists
        donor = labels[i]
        if counts[donor] > 1:
            counts[donor] -= 1
            labels[i] = empty[filled]
            filled += 1
            if filled == len(empty):
                break
    return labels


def initial_centroids(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(K, D) ``K`` distinct rows of ``x`` drawn with ``rng`` (in row order): where
    :func:`lloyd` starts (faiss's and scikit-learn's ``init="random"`` rule)."""
    return x[np.sort(rng.choice(len(x), size=k, replace=False))]


def lloyd(
    x: np.ndarray, k: int, niter: int, rng: np.random.Generator, index: faiss.Index
) -> LloydResult:
    """One k-means restart on ``x`` (N >= K rows, float32, C-contiguous) from ``K`` distinct
    random rows, at most ``niter`` Lloyd iterations (module docstring)."""
    centroids = initial_centroids(x, k, rng)
    previous: np.ndarray | None = None
    for iteration in range(1, niter + 1):
        labels, dist_sq = assign(x, centroids, index)
        if previous is not None and np.array_equal(labels, previous):
            return LloydResult(centroids, labels, dist_sq, iteration, converged=True)
        previous = fill_empty_clusters(labels, dist_sq, k)
        centroids = cluster_means(x, previous, k)
    return LloydResult(centroids, labels, dist_sq, niter, converged=False)
