"""Prototypical uniformity, p-uniform (Eq. 5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pauc_ray.config import LossConfig
from pauc_ray.losses._validation import check_embeddings, check_positive

__all__ = ["p_uniform", "pairwise_sq_distances"]

_DEFAULTS = LossConfig()


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """(P, P) squared Euclidean distances, clamped at 0 and differentiable everywhere.

    ``||a||^2 + ||b||^2 - 2 a·b`` is a polynomial (unlike ``pdist``, whose square root has an
    infinite derivative at 0), so identical rows give distance 0 with a finite gradient; the
    clamp removes the small negatives that cancellation leaves. For unit rows it is
    ``2 - 2 cos``.

    Args:
        x: (P, D) rows.

    Returns:
        (P, P) matrix, symmetric, non-negative.
    """
    sq_norms = x.pow(2).sum(dim=1)
    return (sq_norms.unsqueeze(1) + sq_norms.unsqueeze(0) - 2.0 * (x @ x.T)).clamp_min(0.0)


def p_uniform(protos: Tensor, t: float = _DEFAULTS.uniform_t, log: bool = True) -> Tensor:
    """p-uniform (Eq. 5): ``mean_{p != q} exp(-t ||c_p - c_q||^2)``, or its log.

    ``log=True`` is Wang & Isola's log form (DESIGN.md, section 1): the same minimisers, with
    the gradient divided by the mean kernel (so it stays strong when prototypes are already
    spread); computed with ``logsumexp`` over the ``P (P - 1)`` ordered pairs ``p != q``.
    ``log=False`` is Eq. 5 as the paper writes it.

    Args:
        protos: (P, D) L2-normalised batch prototypes ``cq`` (with gradient).
        t: Gaussian potential scale ``t`` of Eq. 5, > 0.
        log: the log form (True) or Eq. 5 as written (False).

    Returns:
        Scalar in ``[-4t, 0]`` (log form) or ``[exp(-4t), 1]`` for unit rows; 0 (still on
        the graph, zero gradient) when ``P < 2``.

    Example:
        >>> c = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
        >>> float(p_uniform(c, t=2.0)) <= 0.0
        True
    """
    check_embeddings("protos", protos, min_rows=0)
    check_positive("t", t)
    return _p_uniform(protos, t, log)


def _p_uniform(protos: Tensor, t: float, log: bool = True) -> Tensor:
    num = protos.shape[0]
    if num < 2:
        return protos.sum() * 0.0  # no pair: a zero still on the graph
    # Pairs p = q get -inf, so they drop out of the logsumexp with zero gradient; masking
    # measured faster than gathering the upper triangle (no index tensors, no scatter in the
    # backward).
    diagonal = torch.eye(num, dtype=torch.bool, device=protos.device)
    log_kernel = (-t * pairwise_sq_distances(protos)).masked_fill(diagonal, float("-inf"))
    log_mean = torch.logsumexp(log_kernel.flatten(), dim=0) - math.log(num * (num - 1))
    return log_mean if log else log_mean.exp()
