"""Evaluation on frozen features: kNN, linear probe, alignment/uniformity, NEMD, pictures.

``python -m pauc_ray.evaluate`` runs :func:`~pauc_ray.evaluation.report.evaluate_model` (which
imports the clustering, NEMD and plotting code when called); the metric functions below are
pure and import no Ray, faiss or I/O.
"""

from pauc_ray.evaluation.instance_metrics import alignment, uniformity
from pauc_ray.evaluation.knn import KNNResult, knn_classify
from pauc_ray.evaluation.linear_probe import LinearProbeConfig, LinearProbeResult, linear_probe

__all__ = [
    "KNNResult",
    "LinearProbeConfig",
    "LinearProbeResult",
    "alignment",
    "knn_classify",
    "linear_probe",
    "uniformity",
]
