"""Cluster an embedding into K prototypes for each K, then NEMD (Eq. 3) per clustering.

The one implementation of "k-means, then NEMD per K" that every reader of NEMD uses: the run's
own evaluation (``pauc_ray/train/evaluate_run.py``), the offline evaluation
(:mod:`pauc_ray.evaluation.report`), the service's NEMD jobs (``service/nemd_job.py``) and the
blob experiment. k-means is the clustering actor's (:func:`cluster.kmeans.cluster_features`:
faiss, all K in one call, one restart, seeded), so a NEMD computed anywhere clusters as
training does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cluster.config import KMeansConfig
from cluster.kmeans import cluster_features
from pauc_ray.config import NEMDConfig
from pauc_ray.nemd.report import NEMDReport, nemd_report

__all__ = ["ClusteringNEMD", "PrototypeNEMD", "nemd_per_clustering"]


@dataclass(frozen=True)
class ClusteringNEMD:
    """One clustering and its NEMD report."""

    num_clusters: int
    assignments: np.ndarray  # (N,) int64, the prototype of each point
    report: NEMDReport

    def to_dict(self) -> dict:
        return {"num_clusters": self.num_clusters, **self.report.to_dict()}


@dataclass(frozen=True)
class PrototypeNEMD:
    """Every clustering in the order of the K's asked for, and where the time went."""

    clusterings: list[ClusteringNEMD]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def first(self) -> ClusteringNEMD:
        return self.clusterings[0]


def nemd_per_clustering(
    embeddings: np.ndarray,
    num_clusters: Sequence[int],
    nemd: NEMDConfig = NEMDConfig(),  # noqa: B008 - frozen, so a shared default is safe
    *,
    seed: int = 0,
    niter: int = 20,
    use_gpu: bool | None = None,
    return_matrix: bool = False,
    check: Callable[[], None] | None = None,
    device: str | None = None,
) -> PrototypeNEMD:
    """k-means of ``embeddings`` (N, D) into each K of ``num_clusters``, then the NEMD report of
    each clustering (``nemd``, with its own seed for the subsamples). ``check`` is called before
    each clustering's NEMD; it may raise to stop (a cancelled service job). ``device`` is the
    NEMD solver's (None: a GPU when one is visible); ``use_gpu`` faiss's (None: when it sees one).

    Raises:
        ValueError: a K below 2 or above N, or a clustering NEMD cannot use (named by its K).
    """
    ks = tuple(int(k) for k in num_clusters)
    n = len(embeddings)
    if not ks or min(ks) < 2:
        raise ValueError(f"num_clusters must be integers >= 2, got {list(ks)}")
    if max(ks) > n:
        raise ValueError(f"num_clusters: K={max(ks)} needs at least that many points, got {n}")
    start = time.perf_counter()
    kmeans = KMeansConfig(num_clusters=ks, niter=niter, nredo=1, seed=seed, use_gpu=use_gpu)
    found = cluster_features(np.asarray(embeddings), np.arange(n), kmeans).clusterings
    clustered = time.perf_counter()
    out = []
    for k, clustering in zip(ks, found):
        if check is not None:
            check()
        assignments = np.asarray(clustering.assignments, dtype=np.int64)
        try:
            report = nemd_report(
                embeddings, assignments, nemd, return_matrix=return_matrix, device=device
            )
        except ValueError as exc:
            raise ValueError(f"num_clusters K={k}: {exc}") from exc
        out.append(ClusteringNEMD(k, assignments, report))
    seconds = {"cluster": clustered - start, "nemd": time.perf_counter() - clustered}
    return PrototypeNEMD(out, seconds)
