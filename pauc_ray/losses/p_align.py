"""Prototypical alignment, p-align (Eq. 4)."""

from __future__ import annotations

import torch
from torch import Tensor

from pauc_ray.config import LossConfig
from pauc_ray.losses._validation import (
    check_embeddings,
    check_positive,
    check_same_device,
    check_same_shape,
)

__all__ = ["p_align"]

_DEFAULTS = LossConfig()


def _check_align_inputs(query_protos: Tensor, key_protos: Tensor, exponent: float) -> None:
    check_embeddings("query_protos", query_protos, min_rows=0)
    check_same_shape("key_protos", key_protos, "query_protos", query_protos)
    check_same_device(query_protos=query_protos, key_protos=key_protos)
    check_positive("exponent", exponent)


def _p_align(query_protos: Tensor, key_protos: Tensor, exponent: float) -> Tensor:
    if query_protos.shape[0] == 0:
        return query_protos.sum() * 0.0  # no prototypes: a zero still on the graph
    sq_dist = (query_protos - key_protos).pow(2).sum(dim=1)  # (P,)
    if exponent == 2.0:
        return sq_dist.mean()
    # ||x||^s = (||x||^2)^(s/2) has an infinite derivative at x = 0 for s < 2 (and 0 * inf =
    # NaN in the chain rule). Feed the power a 1 where the distance is 0 and select 0 there,
    # so the gradient at coincident prototypes is the subgradient 0.
    positive = sq_dist > 0
    safe = torch.where(positive, sq_dist, torch.ones_like(sq_dist))
    return torch.where(positive, safe.pow(exponent / 2.0), torch.zeros_like(sq_dist)).mean()


def p_align(
    query_protos: Tensor,
    key_protos: Tensor,
    exponent: float = _DEFAULTS.align_exponent,
) -> Tensor:
    """p-align (Eq. 4): ``mean_p ||cq_p - ck_p||_2^s``.

    The positive pairs of Eq. 4 are the two views' estimates of the same prototype: ``cq_p``
    from the queries and ``ck_p`` from the keys of the batch members of cluster ``p``
    (see :func:`~pauc_ray.losses.batch_prototypes`).

    Args:
        query_protos: (P, D) ``cq``, L2-normalised, with gradient.
        key_protos: (P, D) ``ck``, L2-normalised (detached by the caller).
        exponent: ``s`` of Eq. 4, > 0. The gradient stays finite (0) where a pair coincides.

    Returns:
        Scalar; 0 (still on the graph) when ``P = 0``.

    Example:
        >>> cq = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
        >>> p_align(cq, cq.detach())
        tensor(0.)
    """
    _check_align_inputs(query_protos, key_protos, exponent)
    return _p_align(query_protos, key_protos, exponent)
