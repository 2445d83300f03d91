"""Multi-K k-means over momentum features, as PCL runs it once per epoch.

For each ``K`` in ``KMeansConfig.num_clusters`` (clustering ``m`` seeded ``seed + m``), Lloyd's
k-means runs with faiss's exact search as its assignment step (``IndexFlatL2``, the GPU flat
index when asked for or when faiss sees a GPU; :mod:`cluster.lloyd` says why the loop is ours
and not ``faiss.Clustering``). The winning restart's last assignment pass gives the final
assignments and the squared distances behind the inertia and the concentrations ``phi``
(:mod:`cluster.concentration_estimate`). Centroids are returned L2-normalised (the prototypes of
Eq. 2); distances, inertia and ``phi`` use the raw centroids, as PCL's code does.

Points are sorted by id first, so the result does not depend on the order in which workers'
shards were concatenated, and is deterministic for a given seed and thread count.

``niter`` is a maximum: a restart ends once no point changes cluster, which on clustered
features is often well before PCL's 20; ``ClusterResult.iterations`` says how many ran and
``ClusterResult.passes`` how many passes over the points they cost. Restarts (``nredo``) keep
the lowest objective. When ``N > K * max_points_per_centroid`` each restart trains on its own
random subsample (as faiss does) and one more pass assigns every point.

Speed on the CPU: faiss computes distances as sgemm blocks plus a fused argmin and reaches most
of the machine's sgemm rate (``benchmarks/bench_clustering.py``). Its OpenMP threads spin while
they wait; on cores shared with other processes that can cost 2x or more, so a process that
only clusters (the clustering actor) should start with ``OMP_WAIT_POLICY=PASSIVE`` in its
environment (it is read when faiss loads, so it cannot be set from here).
"""

from __future__ import annotations

import logging
import math
import operator
import time

import faiss
import numpy as np

from cluster.concentration_estimate import concentration
from cluster.config import KMeansConfig
from cluster.lloyd import LloydResult, assign, lloyd
from cluster.result import ClusterResult, MultiClusterResult

__all__ = ["ClusterResult", "MultiClusterResult", "cluster_features", "concentration"]

logger = logging.getLogger(__name__)

_SHOWN = 5  # how many offending ids an error message lists
_SMALL_PASS_FLOPS = 1e9  # below this per k-means pass, one thread (see num_threads)


def cluster_features(
    features: np.ndarray,
    ids: np.ndarray,
    config: KMeansConfig = KMeansConfig(),  # noqa: B008 (frozen, so a shared default is safe)
    *,
    expected_ids: np.ndarray | None = None,
    num_threads: int | None = None,
) -> MultiClusterResult:
    """Cluster ``N`` feature vectors once per ``K`` in ``config.num_clusters``.

    Args:
        features: (N, D) real features, any float dtype (converted to float32), usually the
            L2-normalised momentum features ``k`` of the whole training set; any order.
        ids: (N,) distinct integer sample ids, row ``i`` of ``features`` belongs to ``ids[i]``.
        config: k-means settings; ``config.min_points_per_centroid`` only warns (through
            ``logging``).
        expected_ids: optional ids that must all be present (e.g. ``np.arange(N)``), to catch
            a lost shard; ids outside this set are not an error.
        num_threads: faiss's OpenMP threads for this call (restored afterwards). None keeps
            faiss's current setting (``OMP_NUM_THREADS``, which Ray sets to an actor's CPUs),
            except that small problems (``2 N K_max D`` below 1e9 flops a pass, ~10 ms on one
            core) run on one thread: threads gain them little, and on a busy CPU spinning
            OpenMP threads waiting on descheduled ones made such runs 10-20x slower here.

    Returns:
        A :class:`MultiClusterResult` with ids sorted ascending and one :class:`ClusterResult`
        per ``K``, in the order of ``config.num_clusters``.

    Raises:
        ValueError: malformed features, ids, ``expected_ids`` or config (the message names the
            argument and what was expected).
        RuntimeError: ``config.use_gpu`` is True but faiss sees no GPU.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
        >>> result = cluster_features(x, np.arange(100), KMeansConfig(num_clusters=(2, 5)))
        >>> result.num_clusters, result.clusterings[1].centroids.shape
        ((2, 5), (5, 8))
    """
    ks = _check_config(config)
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be None or an integer >= 1, got {num_threads!r}")
    x, sorted_ids = _sorted_features(features, ids, max(ks), expected_ids)
    use_gpu = _resolve_gpu(config.use_gpu)
    previous_threads = faiss.omp_get_max_threads()
    if num_threads is None and 2.0 * x.shape[0] * x.shape[1] * max(ks) < _SMALL_PASS_FLOPS:
        num_threads = 1
    if num_threads is not None:
        faiss.omp_set_num_threads(num_threads)
    try:
        return _cluster_all(x, sorted_ids, ks, config, use_gpu)
    finally:
        faiss.omp_set_num_threads(previous_threads)


def _cluster_all(
    x: np.ndarray, sorted_ids: np.ndarray, ks: tuple[int, ...], config: KMeansConfig, use_gpu: bool
) -> MultiClusterResult:
    """Validated, sorted (N, D) float32 ``x`` -> one clustering per ``K`` in ``ks``."""
    n, d = x.shape
    device = "GPU 0" if use_gpu else f"CPU, {faiss.omp_get_max_threads()} threads"
    logger.info(
        "k-means of %d x %d features into K=%s on %s (niter=%d, nredo=%d, seed=%d)",
        n, d, ks, device, config.niter, config.nredo, config.seed,
    )  # fmt: skip
    index = _flat_l2_index(d, use_gpu)
    results = [_cluster_one(x, k, config, config.seed + m, index) for m, k in enumerate(ks)]
    return MultiClusterResult(ids=sorted_ids, clusterings=tuple(results))


def _cluster_one(
    x: np.ndarray, k: int, config: KMeansConfig, seed: int, index: faiss.Index
) -> ClusterResult:
    """``config.nredo`` restarts of :func:`cluster.lloyd.lloyd`; the lowest objective is kept."""
    start = time.perf_counter()
    n = len(x)
    if n < k * config.min_points_per_centroid:
        logger.warning(
            "k-means: %d points for K=%d clusters is fewer than min_points_per_centroid=%d "
            "per cluster; clusters will be small and phi noisy",
            n, k, config.min_points_per_centroid,
        )  # fmt: skip
    best, iterations = _train(x, k, config, seed, index)
    passes = iterations
    if best.converged and best.labels.shape[0] == n:
        assignments, dist_sq = best.labels, best.dist_sq  # the last pass's, to these centroids
    else:  # stopped at niter, or trained on a subsample: one search assigns every point
        assignments, dist_sq = assign(x, best.centroids, index)
        passes += 1

    # Squared distances come from ||x||^2 - 2 x.c + ||c||^2 and may be slightly negative.
    dist_sq_flat = np.maximum(dist_sq, 0.0)
    counts = np.bincount(assignments, minlength=k)
    inertia = float(dist_sq_flat.sum(dtype=np.float64))
    phi = concentration(np.sqrt(dist_sq_flat), assignments, k, config.concentration_mean)
    raw = best.centroids
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    centroids = raw / np.maximum(norms, np.finfo(np.float32).tiny)
    seconds = time.perf_counter() - start
    logger.info(
        "k-means K=%d (seed %d): %d iterations in all (%d passes over the points), inertia "
        "%.6g, %d empty and %d singleton clusters, phi in [%.4g, %.4g], %.2f s",
        k, seed, iterations, passes, inertia, int((counts == 0).sum()), int((counts == 1).sum()),
        float(phi.min()), float(phi.max()), seconds,
    )  # fmt: skip
    return ClusterResult(
        num_clusters=k,
        centroids=centroids,
        assignments=assignments,
        concentration=phi,
        counts=counts,
        inertia=inertia,
        seconds=seconds,
        iterations=iterations,
        passes=passes,
    )


def _train(
    x: np.ndarray, k: int, config: KMeansConfig, seed: int, index: faiss.Index
) -> tuple[LloydResult, int]:
    """``config.nredo`` restarts, each on its own subsample when ``N > K *
    max_points_per_centroid`` (as faiss subsamples), seeded ``(seed, restart)``.

    Returns:
        The restart with the lowest objective (ties: the first), and the Lloyd iterations
        (assignment passes) summed over all restarts.
    """
    n = len(x)
    sample_size = k * config.max_points_per_centroid
    best: LloydResult | None = None
    iterations = 0
    for restart in range(config.nredo):
        rng = np.random.default_rng([seed, restart])
        if n > sample_size:
            sample = x[np.sort(rng.choice(n, size=sample_size, replace=False))]
        else:
            sample = x
        result = lloyd(sample, k, config.niter, rng, index)
        iterations += result.iterations
        if best is None or result.objective < best.objective:
            best = result
    assert best is not None  # nredo >= 1 is checked
    return best, iterations


def _check_config(config: KMeansConfig) -> tuple[int, ...]:
    """The validated ``K``'s of ``config``; raises ValueError on a bad setting."""
    if not isinstance(config, KMeansConfig):
        raise ValueError(f"config must be a KMeansConfig, got {type(config).__name__}")
    if len(config.num_clusters) == 0:
        raise ValueError("config.num_clusters must name at least one K, got ()")
    ks = []
    for k in config.num_clusters:
        try:
            k = operator.index(k)
        except TypeError:
            raise ValueError(
                f"config.num_clusters must hold integers, got {config.num_clusters!r}"
            ) from None
        if k < 1:
            raise ValueError(f"config.num_clusters must all be >= 1, got {config.num_clusters}")
        ks.append(k)
    for name in ("niter", "nredo", "min_points_per_centroid", "max_points_per_centroid"):
        if getattr(config, name) < 1:
            raise ValueError(f"config.{name} must be >= 1, got {getattr(config, name)}")
    mean = config.concentration_mean
    if mean is None or not (math.isfinite(mean) and mean > 0):
        raise ValueError(f"config.concentration_mean must be positive and finite, got {mean}")
    return tuple(ks)


def _sorted_features(
    features: np.ndarray, ids: np.ndarray, max_k: int, expected_ids: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, D) float32 C-contiguous features and (N,) int64 ids, sorted by id."""
    features = np.asarray(features)
    ids = np.asarray(ids)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {features.shape}")
    if not (
        np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
    ):
        raise ValueError(f"features must be real numbers, got dtype {features.dtype}")
    n, d = features.shape
    if d < 1:
        raise ValueError(f"features must have at least one column, got shape {features.shape}")
    if ids.ndim != 1 or len(ids) != n:
        raise ValueError(
            f"ids must be 1-D with one id per row of features ({n}), got shape {ids.shape}"
        )
    if n and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    if n < max_k:
        raise ValueError(
            f"features has {n} rows, fewer than the largest K={max_k} in config.num_clusters"
        )
    x = np.ascontiguousarray(features, dtype=np.float32)
    bad_rows = ~np.isfinite(x).all(axis=1)
    if bad_rows.any():
        raise ValueError(
            f"features has {int(bad_rows.sum())} row(s) with NaN or inf (after conversion to "
            f"float32), e.g. ids {ids[bad_rows][:_SHOWN].tolist()}"
        )

    ids = ids.astype(np.int64, copy=False)
    if (np.diff(ids) > 0).all():
        sorted_ids = ids
    else:
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        repeated = sorted_ids[1:] == sorted_ids[:-1]
        if repeated.any():
            dupes = np.unique(sorted_ids[1:][repeated])
            raise ValueError(
                f"ids must be distinct, got {len(dupes)} repeated id(s), e.g. "
                f"{dupes[:_SHOWN].tolist()}"
            )
        x = x[order]

    if expected_ids is not None:
        expected = np.asarray(expected_ids)
        if expected.ndim != 1 or (expected.size and not np.issubdtype(expected.dtype, np.integer)):
            raise ValueError(
                f"expected_ids must be a 1-D integer array, got shape {expected.shape} and "
                f"dtype {expected.dtype}"
            )
        missing = np.setdiff1d(expected, sorted_ids)
        if len(missing):
            raise ValueError(
                f"ids lack {len(missing)} of the {len(np.unique(expected))} expected_ids, e.g. "
                f"{missing[:_SHOWN].tolist()}"
            )
    return x, sorted_ids


def _resolve_gpu(use_gpu: bool | None) -> bool:
    """Whether to use the GPU index: ``use_gpu``, or when None whether faiss sees a GPU."""
    has_gpu_build = hasattr(faiss, "StandardGpuResources")
    num_gpus = faiss.get_num_gpus() if has_gpu_build else 0
    if use_gpu is None:
        return num_gpus > 0
    if use_gpu and num_gpus == 0:
        build = "this faiss build sees" if has_gpu_build else "this faiss build (faiss-cpu) has"
        raise RuntimeError(
            f"config.use_gpu=True but {build} no GPU; install faiss-gpu on a GPU machine, or "
            "set use_gpu=None (pick automatically) or False"
        )
    return bool(use_gpu)


def _flat_l2_index(d: int, use_gpu: bool) -> faiss.Index:
    """An empty exact L2 index of dimension ``d``, on GPU 0 or the CPU."""
    if not use_gpu:
        return faiss.IndexFlatL2(d)
    resources = faiss.StandardGpuResources()
    cfg = faiss.GpuIndexFlatConfig()
    cfg.device = 0
    cfg.useFloat16 = False  # PCL's setting: full-precision distances
    index = faiss.GpuIndexFlatL2(resources, d, cfg)
    index.resources_keepalive = resources  # the index must not outlive its resources
    return index
