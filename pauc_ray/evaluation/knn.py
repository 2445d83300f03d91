"""Weighted kNN on frozen, L2-normalised features (Wu et al., instance discrimination).

Each of the ``k`` nearest training points (cosine similarity ``s``) votes for its label with
weight ``exp(s / temperature)``; top-1/top-5 are the shares of test points whose label is the
highest or among the five highest vote totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pauc_ray.evaluation.splits import labelled_split


@dataclass(frozen=True)
class KNNResult:
    top1: float  # percent
    top5: float  # percent
    k: int
    temperature: float


def knn_classify(
    train_features: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_features: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> KNNResult:
    """Weighted cosine kNN top-1/top-5 (percent).

    Args:
        train_features: (N, D) features of the labelled memory.
        train_labels: (N,) integer labels.
        test_features: (M, D) features to classify.
        test_labels: (M,) their true labels.
        k: neighbours (clipped to N).
        temperature: vote weight ``exp(similarity / temperature)``.
        chunk_size: test points per similarity block (bounds memory at chunk x N).
    """
    xtr, ytr, xte, yte = labelled_split(train_features, train_labels, test_features, test_labels)
    xtr, xte = F.normalize(xtr, dim=1), F.normalize(xte, dim=1)
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise ValueError("train_features and test_features must not be empty")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got {k}, {temperature}")
    if (ytr < 0).any() or (yte < 0).any():
        raise ValueError("labels must be non-negative integers")
    num_classes = int(max(ytr.max(), yte.max())) + 1
    k = min(k, xtr.shape[0])
    correct1 = correct5 = 0
    for start in range(0, xte.shape[0], chunk_size):
        sims = xte[start : start + chunk_size] @ xtr.T  # chunk x N
        top_sims, top_idx = sims.topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], num_classes)
        votes.scatter_add_(1, ytr[top_idx], (top_sims / temperature).exp())
        ranked = votes.topk(min(5, num_classes), dim=1).indices
        truth = yte[start : start + chunk_size, None]
        correct1 += int((ranked[:, :1] == truth).sum())
        correct5 += int((ranked == truth).any(dim=1).sum())
    n = xte.shape[0]
    return KNNResult(100.0 * correct1 / n, 100.0 * correct5 / n, k, temperature)
