"""InfoNCE over a MoCo queue (Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pauc_ray.config import LossConfig
from pauc_ray.losses._validation import (
    check_embeddings,
    check_positive,
    check_same_device,
    check_same_shape,
)

__all__ = ["info_nce", "instance_logits"]

_DEFAULTS = LossConfig()


def _check_instance_inputs(q: Tensor, k: Tensor, queue: Tensor | None, temperature: float) -> None:
    check_embeddings("q", q)
    check_same_shape("k", k, "q", q)
    if queue is not None:
        if queue.dim() != 2 or queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"queue must have shape (R, {q.shape[1]}) to match q's dimension, "
                f"got shape {tuple(queue.shape)}"
            )
    check_same_device(q=q, k=k, queue=queue)
    check_positive("temperature", temperature)


def _instance_logits(q: Tensor, k: Tensor, queue: Tensor | None, temperature: float) -> Tensor:
    # Scaling the BxD queries is cheaper than scaling the Bx(1+R) logits.
    q = q / temperature
    # positive logits: Bx1
    l_pos = (q * k).sum(dim=1, keepdim=True)
    if queue is None or queue.shape[0] == 0:
        return l_pos
    # negative logits: BxR
    return torch.cat([l_pos, q @ queue.T], dim=1)


def instance_logits(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None,
    temperature: float = _DEFAULTS.temperature,
) -> Tensor:
    """Logits of instance discrimination: ``[q·k, q·queue] / tau`` (Eq. 1).

    Column 0 holds each sample's positive (its key); the others its ``R`` queue negatives.

    Args:
        q: (B, D) L2-normalised query embeddings (with gradient).
        k: (B, D) L2-normalised key embeddings of the other view (momentum encoder; the
            caller computes them without gradient, nothing here detaches them).
        queue: (R, D) past keys, or ``None`` / zero rows for no negatives.
        temperature: ``tau`` of Eq. 1, > 0.

    Returns:
        (B, 1 + R) logits.

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> k = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> queue = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
        >>> instance_logits(q, k, queue, temperature=0.2).shape
        torch.Size([4, 17])
    """
    _check_instance_inputs(q, k, queue, temperature)
    return _instance_logits(q, k, queue, temperature)


def info_nce(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None,
    temperature: float = _DEFAULTS.temperature,
) -> Tensor:
    """InfoNCE of MoCo (Eq. 1): cross-entropy of :func:`instance_logits` with target 0.

    Averaged over the batch (Eq. 1 sums; the mean keeps the scale independent of ``B``).

    Args:
        q: (B, D) L2-normalised query embeddings.
        k: (B, D) L2-normalised key embeddings (no gradient expected).
        queue: (R, D) negatives, or ``None`` / zero rows (the loss is then exactly 0).
        temperature: ``tau`` of Eq. 1, > 0.

    Returns:
        Scalar loss.

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> queue = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
        >>> loss = info_nce(q, q.clone(), queue, temperature=0.2)
    """
    _check_instance_inputs(q, k, queue, temperature)
    logits = _instance_logits(q, k, queue, temperature)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)
