"""Prototypes estimated from the current batch, for the terms of Eqs. 4-6.

The k-means centroids of Eq. 2 are constants, so a loss on them would not train the encoder.
Eqs. 4-6 therefore act on prototypes re-estimated from the batch (DESIGN.md, section 1): for
each cluster ``p`` that has members in the batch, ``cq_p`` is the normalised mean of their query
embeddings (differentiable) and ``ck_p`` the same over their keys (no gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pauc_ray.losses._validation import (
    check_assignment,
    check_embeddings,
    check_same_device,
    check_same_shape,
)

__all__ = ["BatchPrototypes", "batch_prototypes"]


@dataclass(frozen=True)
class BatchPrototypes:
    """Per-cluster means of one batch, one row per cluster present (ascending cluster id).

    Attributes:
        query: (P, D) ``cq_p``, L2-normalised, differentiable w.r.t. ``q``.
        key: (P, D) ``ck_p``, L2-normalised, detached.
        cluster_ids: (P,) long, the cluster index of each row.
        counts: (P,) long, members of each cluster in the batch.
    """

    query: Tensor
    key: Tensor
    cluster_ids: Tensor
    counts: Tensor


def _cluster_means(x: Tensor, inverse: Tensor, counts: Tensor) -> Tensor:
    sums = x.new_zeros(counts.shape[0], x.shape[1]).index_add(0, inverse, x)
    # The division does not change the direction; it keeps the pre-normalisation scale a mean.
    # A zero mean (members cancelling out) normalises to 0 with a finite gradient.
    return F.normalize(sums / counts.unsqueeze(1).to(x.dtype), dim=1)


def batch_prototypes(q: Tensor, k: Tensor, assignment: Tensor) -> BatchPrototypes:
    """Batch prototypes of one clustering: normalised per-cluster means of ``q`` and ``k``.

    Vectorised (``unique`` + ``index_add``); clusters without members in the batch get no row.

    Args:
        q: (B, D) query embeddings (with gradient).
        k: (B, D) key embeddings (detached here).
        assignment: (B,) integer cluster of each sample (any values; not range-checked).

    Returns:
        :class:`BatchPrototypes` with ``P`` = number of distinct clusters in ``assignment``.

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
        >>> protos = batch_prototypes(q, q.detach(), torch.tensor([2, 0, 2, 5, 5, 5]))
        >>> protos.cluster_ids.tolist(), protos.counts.tolist()
        ([0, 2, 5], [1, 2, 3])
    """
    check_embeddings("q", q)
    check_same_shape("k", k, "q", q)
    check_assignment("assignment", assignment, q.shape[0])
    check_same_device(q=q, k=k, assignment=assignment)
    return _batch_prototypes(q, k, assignment)


def _batch_prototypes(q: Tensor, k: Tensor, assignment: Tensor) -> BatchPrototypes:
    cluster_ids, inverse, counts = torch.unique(
        assignment.long(), sorted=True, return_inverse=True, return_counts=True
    )
    query = _cluster_means(q, inverse, counts)
    with torch.no_grad():
        key = _cluster_means(k.detach(), inverse, counts)
    return BatchPrototypes(query=query, key=key, cluster_ids=cluster_ids, counts=counts)
