"""ProtoNCE for one clustering (Eq. 2) with PCL's concentration-scaled logits.

Each sample is contrasted against its own prototype ``c_s`` (the positive) and ``r`` negative
prototypes drawn uniformly without replacement from the ``K - 1`` others, every logit divided by
that prototype's concentration ``phi``. With ``r >= K - 1`` every other prototype is a negative
and nothing is sampled; the loss then is the cross-entropy of all ``K`` logits with the own
cluster as target, which :func:`proto_nce` computes without building the reordered logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pauc_ray.config import LossConfig
from pauc_ray.losses._validation import (
    check_assignment,
    check_assignment_range,
    check_embeddings,
    check_non_negative,
    check_same_device,
)

__all__ = ["proto_nce", "prototype_logits", "sample_negative_prototypes"]

_DEFAULTS = LossConfig()


def sample_negative_prototypes(
    assignment: Tensor,
    num_prototypes: int,
    num_negatives: int = _DEFAULTS.num_negative_prototypes,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Indices of the negative prototypes of each sample (Eq. 2's ``j``).

    Each row holds ``r' = min(num_negatives, K - 1)`` distinct prototype indices, none equal to
    the sample's own ``assignment``, drawn uniformly without replacement. When
    ``num_negatives >= K - 1`` the row is every other prototype in ascending order and the
    generator is not used.

    Sampling runs on ``generator.device`` (or on ``assignment.device`` when ``generator`` is
    ``None``) and the result is moved to ``assignment.device``, so a CPU generator gives the same
    indices whatever device the embeddings live on. On CPU each row is a prefix of its own
    ``randperm(K - 1)``; on an accelerator, the top ``r'`` of random keys (faster there, but a
    different stream: indices are reproducible per generator device). Pass a generator on the
    embeddings' accelerator when ``K`` is large, since the CPU draw costs O(B K).

    Args:
        assignment: (B,) long, each sample's prototype in ``[0, K)``.
        num_prototypes: ``K``, >= 1.
        num_negatives: ``r``, >= 0.
        generator: source of randomness; same seed, same indices.

    Returns:
        (B, r') long tensor on ``assignment.device``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> idx = sample_negative_prototypes(torch.tensor([0, 3]), 10, 4, generator=g)
        >>> idx.shape
        torch.Size([2, 4])
    """
    if not isinstance(assignment, Tensor) or assignment.dim() != 1:
        shape = tuple(assignment.shape) if isinstance(assignment, Tensor) else type(assignment)
        raise ValueError(f"assignment must be a 1-D tensor of shape (B,), got {shape}")
    check_assignment("assignment", assignment, assignment.shape[0])
    if num_prototypes < 1:
        raise ValueError(f"num_prototypes must be >= 1, got {num_prototypes}")
    check_non_negative("num_negatives", num_negatives)
    check_assignment_range(["assignment"], [assignment], [num_prototypes])
    return _sample_negatives(assignment, num_prototypes, num_negatives, generator)


def _sample_negatives(
    assignment: Tensor, num_prototypes: int, num_negatives: int, generator: torch.Generator | None
) -> Tensor:
    batch = assignment.shape[0]
    num_others = num_prototypes - 1
    r = min(int(num_negatives), num_others)
    own = assignment.long().unsqueeze(1)
    if r == 0 or batch == 0:
        return torch.empty(batch, r, dtype=torch.long, device=assignment.device)
    if r == num_others:
        idx = torch.arange(num_others, device=assignment.device).expand(batch, num_others)
    else:
        device = generator.device if generator is not None else assignment.device
        if device.type == "cpu":
            # One Fisher-Yates shuffle (randperm) per row: O(K) each, no selection; on CPU it
            # measured 3-5x faster than the top-r of random keys below.
            idx = torch.stack(
                [torch.randperm(num_others, generator=generator)[:r] for _ in range(batch)]
            ).to(assignment.device)
        else:
            # On accelerators one batched top-r of random keys beats B small launches.
            keys = torch.rand(batch, num_others, generator=generator, device=device)
            idx = keys.topk(r, dim=1, sorted=False).indices.to(assignment.device)
    # Draw from 0..K-2 and shift indices at or past the own prototype up by one: the own
    # prototype can never be drawn and no index repeats.
    return idx + (idx >= own).long()


def _check_prototype_inputs(
    q: Tensor,
    prototypes: Tensor,
    concentration: Tensor,
    assignment: Tensor,
    num_negatives: int,
    *,
    check_range: bool = True,
    prefix: str = "",
) -> None:
    check_embeddings("q", q)
    check_embeddings(f"{prefix}prototypes", prototypes)
    if prototypes.shape[1] != q.shape[1]:
        raise ValueError(
            f"{prefix}prototypes must have shape (K, {q.shape[1]}) to match q's dimension, "
            f"got shape {tuple(prototypes.shape)}"
        )
    num_prototypes = prototypes.shape[0]
    if concentration.dim() != 1 or concentration.shape[0] != num_prototypes:
        raise ValueError(
            f"{prefix}concentration must have shape ({num_prototypes},) (one per prototype), "
            f"got shape {tuple(concentration.shape)}"
        )
    check_assignment(f"{prefix}assignment", assignment, q.shape[0])
    check_non_negative("num_negatives", num_negatives)
    check_same_device(
        q=q,
        **{
            f"{prefix}prototypes": prototypes,
            f"{prefix}concentration": concentration,
            f"{prefix}assignment": assignment,
        },
    )
    if check_range:
        check_assignment_range([f"{prefix}assignment"], [assignment], [num_prototypes])


def _scaled_logits(q: Tensor, prototypes: Tensor, concentration: Tensor) -> Tensor:
    # BxK: q·c_j / phi_j. Scaling the K prototypes is cheaper than scaling the BxK logits.
    return q @ (prototypes / concentration.unsqueeze(1)).T


def prototype_logits(
    q: Tensor,
    prototypes: Tensor,
    concentration: Tensor,
    assignment: Tensor,
    num_negatives: int = _DEFAULTS.num_negative_prototypes,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Logits of Eq. 2: ``q·c_j / phi_j`` over the positive and ``r'`` negative prototypes.

    Column 0 is the sample's own prototype ``q·c_s / phi_s``; columns ``1..r'`` are the
    negatives of :func:`sample_negative_prototypes` (called once with ``generator``, so the same
    seed gives the same columns).

    Args:
        q: (B, D) L2-normalised query embeddings.
        prototypes: (K, D) L2-normalised cluster centroids of one clustering (constants).
        concentration: (K,) positive concentrations ``phi`` (values not checked).
        assignment: (B,) long, each sample's cluster in ``[0, K)``.
        num_negatives: ``r``; ``r' = min(r, K - 1)`` negatives per sample.
        generator: randomness of the negative draw (see :func:`sample_negative_prototypes`).

    Returns:
        (B, 1 + r') logits.

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> c = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
        >>> phi = torch.full((10,), 0.2)
        >>> prototype_logits(q, c, phi, torch.tensor([0, 1, 1, 9]), num_negatives=5).shape
        torch.Size([4, 6])
    """
    _check_prototype_inputs(q, prototypes, concentration, assignment, num_negatives)
    return _prototype_logits(q, prototypes, concentration, assignment, num_negatives, generator)


def _prototype_logits(
    q: Tensor,
    prototypes: Tensor,
    concentration: Tensor,
    assignment: Tensor,
    num_negatives: int,
    generator: torch.Generator | None,
) -> Tensor:
    full = _scaled_logits(q, prototypes, concentration)
    own = assignment.long().unsqueeze(1)
    negatives = _sample_negatives(assignment, prototypes.shape[0], num_negatives, generator)
    return torch.cat([full.gather(1, own), full.gather(1, negatives)], dim=1)


def _proto_nce(
    q: Tensor,
    prototypes: Tensor,
    concentration: Tensor,
    assignment: Tensor,
    num_negatives: int,
    generator: torch.Generator | None,
    *,
    need_hits: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Unchecked ProtoNCE: (scalar loss, (B,) bool "own prototype is the top-1 logit" or None)."""
    num_others = prototypes.shape[0] - 1
    full = _scaled_logits(q, prototypes, concentration)
    own = assignment.long()
    if min(int(num_negatives), num_others) == num_others:
        # Every prototype is in the softmax, so the loss is plain cross-entropy over the BxK
        # logits with the own cluster as target: no sampling, no reordering, fused kernels.
        logits = full
        loss = F.cross_entropy(full, own)
    else:
        negatives = _sample_negatives(assignment, prototypes.shape[0], num_negatives, generator)
        logits = torch.cat([full.gather(1, own.unsqueeze(1)), full.gather(1, negatives)], dim=1)
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, target)
    if not need_hits:
        return loss, None
    # argmax with the positive in column 0 picks column 0 on ties, hence ">=".
    with torch.no_grad():
        positive = full.gather(1, own.unsqueeze(1)).squeeze(1)
        hits = positive >= logits.max(dim=1).values
    return loss, hits


def proto_nce(
    q: Tensor,
    prototypes: Tensor,
    concentration: Tensor,
    assignment: Tensor,
    num_negatives: int = _DEFAULTS.num_negative_prototypes,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ProtoNCE of one clustering (the ``m``-th summand of Eq. 2, without the InfoNCE part).

    Cross-entropy of :func:`prototype_logits` with target 0, averaged over the batch. With
    ``num_negatives >= K - 1`` (the usual case: ``r = 16384`` and ``K <= 10000``) it is the
    cross-entropy of all ``K`` logits with the own cluster as target, with no sampling.

    Args:
        q: (B, D) L2-normalised query embeddings.
        prototypes: (K, D) L2-normalised centroids.
        concentration: (K,) positive concentrations ``phi``.
        assignment: (B,) long cluster of each sample in ``[0, K)``.
        num_negatives: ``r`` negative prototypes per sample.
        generator: randomness of the negative draw when ``r < K - 1``.

    Returns:
        Scalar loss (exactly 0 when ``K = 1`` or ``r = 0``).

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> c = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
        >>> loss = proto_nce(q, c, torch.full((10,), 0.2), torch.tensor([0, 1, 1, 9]))
    """
    _check_prototype_inputs(q, prototypes, concentration, assignment, num_negatives)
    loss, _ = _proto_nce(q, prototypes, concentration, assignment, num_negatives, generator)
    return loss
