"""Prototypical correlation, p-corr (Eq. 6)."""

from __future__ import annotations

import torch
from torch import Tensor

from pauc_ray.config import LossConfig
from pauc_ray.losses._validation import check_embeddings, check_positive

__all__ = ["p_corr"]

_DEFAULTS = LossConfig()


def p_corr(protos: Tensor, temperature: float = _DEFAULTS.corr_temperature) -> Tensor:
    """p-corr (Eq. 6): ``-mean_{p != q} KL(pi_p || pi_q)``, ``pi_p = softmax(c_p / rho)``.

    Eq. 6, ``E[c_p log(c_q / c_p)]``, is ``-KL(c_p || c_q)`` and needs distributions, hence the
    softmax over the embedding dimensions (DESIGN.md, section 1). Minimising it pushes the
    prototypes' dimension profiles apart. With unit rows every logit lies in ``[-1/rho, 1/rho]``,
    so the loss is bounded. All pairs at once, in O(P D): the sum over ordered pairs of
    ``KL[p, q] = pi_p·log pi_p - pi_p·log pi_q`` is
    ``P sum_p pi_p·log pi_p - (sum_p pi_p)·(sum_q log pi_q)``.

    Args:
        protos: (P, D) L2-normalised batch prototypes ``cq`` (with gradient).
        temperature: ``rho``, > 0.

    Returns:
        Scalar <= 0 (up to rounding); 0 (still on the graph, zero gradient) when ``P < 2``.

    Example:
        >>> c = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
        >>> float(p_corr(c, temperature=0.1)) <= 0.0
        True
    """
    check_embeddings("protos", protos, min_rows=0)
    check_positive("temperature", temperature)
    return _p_corr(protos, temperature)


def _p_corr(protos: Tensor, temperature: float) -> Tensor:
    num = protos.shape[0]
    if num < 2:
        return protos.sum() * 0.0  # no pair: a zero still on the graph
    log_pi = torch.log_softmax(protos / temperature, dim=1)  # (P, D)
    pi = log_pi.exp()
    # KL[p, q] = pi_p·log pi_p - pi_p·log pi_q. Summed over all ordered pairs this is
    # P * sum_p pi_p·log pi_p - (sum_p pi_p)·(sum_q log pi_q): O(P D) instead of the (P, P)
    # matrix pi @ log_pi.T. The diagonal terms KL[p, p] are exactly 0, so the full sum is the
    # sum over p != q.
    off_diagonal_sum = num * (pi * log_pi).sum() - pi.sum(dim=0) @ log_pi.sum(dim=0)
    return -off_diagonal_sum / (num * (num - 1))
