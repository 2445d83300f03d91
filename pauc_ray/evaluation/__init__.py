"""Evaluation on frozen features: kNN now; the linear probe comes with the evaluation issue."""

from pauc_ray.evaluation.knn import KNNResult, knn_classify

__all__ = ["KNNResult", "knn_classify"]
