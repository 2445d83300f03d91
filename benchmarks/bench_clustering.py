"""How fast is ``cluster_features`` on this machine, against its matmul rate and scikit-learn?

Three measurements in one run, on the same data (``n`` L2-normalised points in ``d`` dimensions
drawn around ``k`` random centres, the shape of one PCL clustering):

1. the machine's float32 matrix-multiply rate (numpy and torch sgemm on the shapes k-means
   multiplies: blocks of (4096 x d) @ (d x k), which is faiss's blocking, and the full
   (n x d) @ (d x k)); best of several repeats, measured before and after the k-means runs
   (the best of both counts, so a busy moment cannot flatter the fraction below), GFLOP/s;
2. ``cluster_features`` into ``K = k`` (nredo=1, ``niter`` iterations, final assignment and
   concentration included): time, achieved GFLOP/s and its fraction of the matmul rate;
3. scikit-learn's ``KMeans(algorithm="lloyd", n_init=1, max_iter=niter, tol=0)`` started from
   the very centroids ours starts from (``k`` random data points drawn by
   :func:`cluster.lloyd.lloyd` with the restart's generator), so both inertias can be
   compared: time, inertias.

A k-means pass costs ``2 n k d`` flops for the distances (the rest is O(n d + n k)). Both
implementations run at most ``niter`` Lloyd iterations, stop once no label changes, and make
one final assignment pass only when they did not converge, so
``GFLOP/s = 2 n k d passes / seconds`` with each one's own count of passes
(``ClusterResult.passes`` for ours).

Run: ``python benchmarks/bench_clustering.py [--n N --d D --k K --niter I --seed S]``. On a
CPU shared with other work the numbers are indicative only (the load average is reported):
faiss's OpenMP threads spin while they wait, which costs a lot when other processes hold the
cores; ``OMP_WAIT_POLICY=PASSIVE`` (set before the process starts) avoids that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import faiss
import numpy as np
import torch
from sklearn.cluster import KMeans

from cluster import KMeansConfig, cluster_features
from cluster.lloyd import initial_centroids

logger = logging.getLogger(__name__)


def clustered_data(n: int, d: int, k: int, seed: int, noise: float = 0.8) -> np.ndarray:
    """(n, d) float32 unit vectors, ``n / k`` on average around each of ``k`` random unit
    centres, with Gaussian noise of norm about ``noise`` added before normalising (centres are
    about 1.4 apart, so clusters overlap, as real features' do)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, k, size=n)]
    x += rng.standard_normal((n, d), dtype=np.float32) * np.float32(noise / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: thread pools, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rates(x: np.ndarray, k: int, repeats: int = 5) -> dict[str, float]:
    """Best-of-``repeats`` float32 GFLOP/s of numpy and torch on k-means' product shapes."""
    rng = np.random.default_rng(1)
    c = rng.standard_normal((k, x.shape[1]), dtype=np.float32)
    block = np.ascontiguousarray(x[:4096])
    out_block = np.empty((len(block), k), dtype=np.float32)
    out_full = np.empty((len(x), k), dtype=np.float32)
    tx, tc, tblock = torch.from_numpy(x), torch.from_numpy(c), torch.from_numpy(block)
    t_out_block, t_out_full = torch.from_numpy(out_block), torch.from_numpy(out_full)
    flops_block, flops_full = 2.0 * block.size * k, 2.0 * x.size * k
    cases = {
        "numpy_block": (lambda: np.matmul(block, c.T, out=out_block), flops_block),
        "numpy_full": (lambda: np.matmul(x, c.T, out=out_full), flops_full),
        "torch_block": (lambda: torch.mm(tblock, tc.T, out=t_out_block), flops_block),
        "torch_full": (lambda: torch.mm(tx, tc.T, out=t_out_full), flops_full),
    }
    rates = {name: flops / _best_seconds(fn, repeats) / 1e9 for name, (fn, flops) in cases.items()}
    rates["best"] = max(rates.values())
    return rates


def run(n: int = 100_000, d: int = 128, k: int = 1000, niter: int = 20, seed: int = 0) -> dict:
    """All three measurements; returns a JSON-ready dict (times in seconds, rates in GFLOP/s)."""
    x = clustered_data(n, d, k, seed)
    ids = np.arange(n)
    rates_before = matmul_rates(x, k)

    config = KMeansConfig(num_clusters=(k,), niter=niter, nredo=1, seed=seed)
    start = time.perf_counter()
    ours = cluster_features(x, ids, config).clusterings[0]
    ours_seconds = time.perf_counter() - start

    sk = KMeans(
        n_clusters=k,
        init=initial_centroids(x, k, np.random.default_rng([seed, 0])),
        algorithm="lloyd",
        n_init=1,
        max_iter=niter,
        tol=0.0,
        copy_x=True,
    )
    start = time.perf_counter()
    sk.fit(x)
    sk_seconds = time.perf_counter() - start
    # scikit-learn adds a final E-step unless its labels stopped changing, which (tol=0) is the
    # only way it ends before max_iter; at max_iter it may have converged, but rarely does
    sk_passes = int(sk.n_iter_) + (1 if sk.n_iter_ >= niter else 0)

    rates_after = matmul_rates(x, k)
    rates = {name: max(rates_before[name], rates_after[name]) for name in rates_before}
    passes = ours.passes
    ours_rate = 2.0 * n * k * d * passes / ours_seconds / 1e9
    rel_gap = abs(ours.inertia - sk.inertia_) / sk.inertia_
    return {
        "shape": {"n": n, "d": d, "k": k, "niter": niter, "seed": seed},
        "machine": {
            "cpu_count": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            "processor": platform.processor() or platform.machine(),
        },
        "matmul_gflops": rates,
        "ours": {
            "seconds": ours_seconds,
            "gflops": ours_rate,
            "iterations": ours.iterations,
            "converged": ours.passes == ours.iterations,
            "passes": passes,
            "seconds_per_pass": ours_seconds / passes,
            "fraction_of_matmul": ours_rate / rates["best"],
            "inertia": ours.inertia,
            "empty_clusters": int((ours.counts == 0).sum()),
        },
        "sklearn": {
            "seconds": sk_seconds,
            "gflops": 2.0 * n * k * d * sk_passes / sk_seconds / 1e9,
            "n_iter": int(sk.n_iter_),
            "passes": sk_passes,
            "seconds_per_pass": sk_seconds / sk_passes,
            "inertia": float(sk.inertia_),
        },
        "inertia_relative_gap": rel_gap,
        "inertia_within_1pct": bool(rel_gap <= 0.01),
        "sklearn_over_ours_time": sk_seconds / ours_seconds,
        "sklearn_over_ours_time_per_pass": (sk_seconds / sk_passes) / (ours_seconds / passes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--niter", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = run(n=args.n, d=args.d, k=args.k, niter=args.niter, seed=args.seed)
    print(json.dumps(report, indent=2))
    if not report["inertia_within_1pct"]:
        logger.warning(
            "inertias differ by %.2f%% (> 1%%): the time comparison is not like for like",
            100 * report["inertia_relative_gap"],
        )


if __name__ == "__main__":
    main()
