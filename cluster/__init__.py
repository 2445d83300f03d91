"""Clustering for PAUC: multi-K faiss k-means over momentum features (no models, no training).

Exports are loaded lazily so that ``cluster.config`` (imported by ``pauc_ray.config``, and so by
the loss modules) never pulls in faiss.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

# faiss logs which SIMD build it loaded at INFO in every process that clusters: not news
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

_EXPORTS = {
    "ClusterResult": "cluster.result",
    "MultiClusterResult": "cluster.result",
    "KMeansConfig": "cluster.config",
    "cluster_features": "cluster.kmeans",
    "concentration": "cluster.concentration_estimate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")
