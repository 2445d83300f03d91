"""Clustering for PAUC: multi-K faiss k-means over momentum features (no models, no training)."""

from cluster.concentration import concentration
from cluster.config import KMeansConfig
from cluster.kmeans import cluster_features
from cluster.result import ClusterResult, MultiClusterResult

__all__ = [
    "ClusterResult",
    "KMeansConfig",
    "MultiClusterResult",
    "cluster_features",
    "concentration",
]
