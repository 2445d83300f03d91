"""What a NEMD job computes: embed, cluster into K prototypes for each K, NEMD per clustering.

The same steps as the run's own evaluation (``pauc_ray/train/evaluate_run.py``): L2-normalised
embeddings of the inputs through the model's ``EvalTransform``; faiss k-means
one restart, seeded) and the NEMD report (Eq. 3) of each clustering, both by
:func:`pauc_ray.evaluation.prototype_nemd.nemd_per_clustering`. Each report has the CLI's fields plus
``num_clusters``, like the ``nemd_report.json`` that training writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pauc_ray.config import NEMDConfig
from pauc_ray.evaluation.prototype_nemd import nemd_per_clustering
from service.plot import nemd_figure
from service.registry import ServedModel

__all__ = ["EMBED_CHUNK", "NemdSettings", "run_nemd"]

logger = logging.getLogger(__name__)

EMBED_CHUNK = 256  # inputs per forward in a job: small enough not to hold the forward thread


@dataclass(frozen=True)
class NemdSettings:
    """The settings of one job (fields of ``POST /nemd``)."""

    num_clusters: tuple[int, ...]
    epsilon: float
    max_points: int | None
    max_pairs: int | None
    seed: int
    matrix: bool

    def nemd_config(self) -> NEMDConfig:
        return NEMDConfig(
            epsilon=self.epsilon,
            max_points=self.max_points,
            max_pairs=self.max_pairs,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["num_clusters"] = list(self.num_clusters)
        return out


def run_nemd(
    served: ServedModel,
    load_inputs: Callable[[], np.ndarray],
    settings: NemdSettings,
    check: Callable[[], None] = lambda: None,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Runs a job (blocking). Returns ``(result, plot PNG)``.

    Args:
        served: the model.
        load_inputs: returns the raw inputs (N, ...) (a dataset is read here, in the job).
        settings: clusterings and NEMD settings.
        check: called between stages; raises to stop the job (cancelled, out of time).
        forward: embeds raw inputs (default ``served.embed``).
    """
    forward = forward or served.embed
    start = time.perf_counter()
    inputs = load_inputs()
    n = len(inputs)
    if n < max(settings.num_clusters):
        raise ValueError(
            f"num_clusters: K={max(settings.num_clusters)} needs at least that many points, got {n}"
        )
    chunks = []
    for i in range(0, n, EMBED_CHUNK):
        check()
        chunks.append(forward(inputs[i : i + EMBED_CHUNK]))
    embeddings = np.concatenate(chunks)
    embedded = time.perf_counter()
    check()
    found = nemd_per_clustering(
        embeddings,
        settings.num_clusters,
        settings.nemd_config(),
        seed=settings.seed,
        return_matrix=True,
        check=check,
        device=str(served.device),
        use_gpu=served.device.type == "cuda",
    )
    reports, figure_rows = [], []
    for clustering in found.clusterings:
        entry = clustering.to_dict()
        if not settings.matrix:
            entry["matrix"] = None
        reports.append(entry)
        figure_rows.append((clustering.num_clusters, clustering.assignments, clustering.report))
    png = nemd_figure(embeddings, figure_rows)
    result = {
        "num_points": n,
        "embedding_dim": int(embeddings.shape[1]),
        "embed_seconds": round(embedded - start, 3),
        "cluster_seconds": round(found.seconds["cluster"], 3),
        "reports": reports,
    }
    return result, png
