"""The PAUC objective (Eq. 7) and its baselines as the same code with terms switched off.

``total = InfoNCE + mean_m (ProtoNCE_m + alpha p-align_m + beta p-uniform_m + gamma p-corr_m)``
(DESIGN.md, section 1). ``moco`` keeps InfoNCE only, ``pcl`` adds ProtoNCE, ``pauc`` adds the
three prototype terms, which act on the batch prototypes of each clustering ``m``. Terms whose
weight is 0 are not computed at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from pauc_ray.collectives import gather_rows, world_size
from pauc_ray.config import PROTOTYPE_TERMS, LossConfig, method_preset
from pauc_ray.losses._validation import (
    check_assignment_range,
)
from pauc_ray.losses.batch_prototypes import _batch_prototypes
from pauc_ray.losses.info_nce import _check_instance_inputs, _instance_logits
from pauc_ray.losses.p_align import _p_align
from pauc_ray.losses.p_corr import _p_corr
from pauc_ray.losses.p_uniform import _p_uniform
from pauc_ray.losses.proto_nce import _check_prototype_inputs, _proto_nce

__all__ = ["TERM_NAMES", "LossOutput", "PrototypeSet", "pauc_loss", "term_gradient_norms"]

_DEFAULTS = LossConfig()

TERM_NAMES = ("info_nce", "proto_nce", *(term.name for term in PROTOTYPE_TERMS))

# Each prototype term of PROTOTYPE_TERMS on one clustering's batch prototypes.
_PROTOTYPE_TERM_FUNCTIONS = {
    "p_align": lambda protos, c: _p_align(protos.query, protos.key, c.align_exponent),
    "p_uniform": lambda protos, c: _p_uniform(
        protos.query, c.uniform_t, log=c.uniform_form == "log"
    ),
    "p_corr": lambda protos, c: _p_corr(protos.query, c.corr_temperature),
}
assert set(_PROTOTYPE_TERM_FUNCTIONS) == {term.name for term in PROTOTYPE_TERMS}


@dataclass(frozen=True)
class PrototypeSet:
    """One clustering ``m`` as the loss sees it (from the epoch's k-means, no gradient).

    Attributes:
        prototypes: (K, D) L2-normalised centroids ``c^m``.
        concentration: (K,) positive concentrations ``phi^m`` (Eq. 2).
        assignment: (B,) long, this batch's cluster in ``[0, K)`` for each sample.
    """

    prototypes: Tensor
    concentration: Tensor
    assignment: Tensor


@dataclass(frozen=True)
class LossOutput:
    """Result of :func:`pauc_loss`.

    Attributes:
        total: scalar tensor to call ``backward`` on.
        terms: the unweighted value of each term in :data:`TERM_NAMES`, averaged over the
            clusterings; 0.0 for terms that were switched off.
        instance_accuracy: top-1 accuracy (%) of the positive key among the instance logits.
        prototype_accuracy: top-1 accuracy (%) of the own prototype among the prototype logits,
            averaged over the clusterings; ``None`` when ProtoNCE was not computed.
        contributions: each computed term's share of ``total`` as a tensor on the graph
            (weight times the mean over clusterings), for :func:`term_gradient_norms`.
        gradient_norms: :func:`term_gradient_norms` when the caller measured them, else empty.
        skipped: the optimiser step was skipped (fp16 gradients overflowed; set by the step).
    """

    total: Tensor
    terms: dict[str, float]
    instance_accuracy: float
    prototype_accuracy: float | None
    contributions: dict[str, Tensor] = field(default_factory=dict, repr=False)
    gradient_norms: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


def term_gradient_norms(output: LossOutput, q: Tensor) -> dict[str, float]:
    """``||d contribution / d q||_F`` for each computed term: how hard each term pulls on the
    query embeddings (B, D), weights included. Terms balanced by this measure move the
    embedding comparably; one far above the others dominates training.

    Call before ``output.total.backward()`` (the graph is kept). With ``torch.distributed``
    and batch prototypes over the global batch, every process must call it at the same step.
    """
    norms = {}
    for name, value in output.contributions.items():
        (grad,) = torch.autograd.grad(value, q, retain_graph=True, allow_unused=True)
        norms[name] = 0.0 if grad is None else float(grad.norm())
    return norms


def _gather_batch(q: Tensor, k: Tensor, assignments: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Global batch across processes: (W*B, D) q with gradient, (W*B, D) k, (M, W*B) assignments.

    A no-op in one process. Every process must hold the same batch size ``B``. The backward of
    the gather sums every process's gradients for each process's own rows, so after DDP
    averages the parameter gradients they are those of the global-batch loss.
    """
    if world_size() == 1:
        return q, k, assignments
    q_all = gather_rows(q)
    k_all = gather_rows(k.detach())
    assignments_all = gather_rows(assignments.t().contiguous()).t()
    return q_all, k_all, assignments_all


def pauc_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor | None,
    prototype_sets: Sequence[PrototypeSet] = (),
    *,
    method: str = "pauc",
    config: LossConfig = _DEFAULTS,
    warmup: bool = False,
    generator: torch.Generator | None = None,
    gather_distributed: bool = False,
) -> LossOutput:
    """The total loss of Eq. 7 for ``moco``, ``pcl`` or ``pauc``.

    ``InfoNCE + mean_m (ProtoNCE_m + alpha p-align_m + beta p-uniform_m + gamma p-corr_m)``,
    with the weights of :func:`pauc_ray.config.method_preset` (``moco``: InfoNCE only and
    ``prototype_sets`` ignored; ``pcl``: alpha = beta = gamma = 0; ``pauc``: the weights of
    ``config``). ``warmup=True`` gives InfoNCE alone (the paper's first epochs). Terms with
    weight 0, and the batch prototypes when all three weights are 0, are not computed.

    Args:
        q: (B, D) L2-normalised query embeddings (with gradient).
        k: (B, D) L2-normalised key embeddings (momentum encoder, no gradient).
        queue: (R, D) MoCo queue of negative keys, or ``None``.
        prototype_sets: the ``M`` clusterings; required (non-empty) for ``pcl``/``pauc`` outside
            warm-up.
        method: ``"moco"``, ``"pcl"`` or ``"pauc"``.
        config: temperatures, weights and ``r`` (see :class:`~pauc_ray.config.LossConfig`).
        warmup: InfoNCE alone when true; the trainer passes ``epoch < config.warmup_epochs``.
        generator: randomness of the negative-prototype draw (used only when ``r < K - 1``).
        gather_distributed: compute the batch prototypes (Eqs. 4-6) over the global batch when
            ``torch.distributed`` runs more than one process (equal batch sizes required);
            a no-op otherwise. InfoNCE and ProtoNCE are per-sample and stay local.

    Returns:
        :class:`LossOutput`; one host sync reads all the logged numbers.

    Example:
        >>> q = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
        >>> c = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
        >>> sets = [PrototypeSet(c, torch.full((5,), 0.2), torch.randint(0, 5, (8,)))]
        >>> out = pauc_loss(q.requires_grad_(), q.detach(), None, sets, method="pauc")
        >>> sorted(out.terms)
        ['info_nce', 'p_align', 'p_corr', 'p_uniform', 'proto_nce']
    """
    preset = method_preset(method, config)
    _check_instance_inputs(q, k, queue, config.temperature)
    use_prototypes = preset.use_prototypes and not warmup
    if use_prototypes:
        _check_prototype_sets(q, prototype_sets, config.num_negative_prototypes)

    # instance logits: Bx(1+R)
    logits = _instance_logits(q, k, queue, config.temperature)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    info = F.cross_entropy(logits, target)
    with torch.no_grad():
        instance_hits = (logits[:, 0] >= logits.max(dim=1).values).float().mean()
    total = info
    contributions = {"info_nce": info}

    zero = q.new_zeros(())
    sums = {name: zero for name in TERM_NAMES[1:]}
    proto_hits = zero
    if use_prototypes:
        weights = preset.weights
        need_batch_protos = any(w > 0 for w in weights.values())
        assignments = torch.stack([s.assignment.long() for s in prototype_sets])  # MxB
        q_all, k_all, assignments_all = q, k, assignments
        if need_batch_protos and gather_distributed:
            q_all, k_all, assignments_all = _gather_batch(q, k, assignments)

        weighted = {name: zero for name in TERM_NAMES[1:]}
        computed: set[str] = set()
        for m, pset in enumerate(prototype_sets):
            loss_m, hits_m = _proto_nce(
                q,
                pset.prototypes,
                pset.concentration,
                assignments[m],
                config.num_negative_prototypes,
                generator,
                need_hits=True,
            )
            terms_m = {"proto_nce": loss_m}
            if need_batch_protos:
                protos = _batch_prototypes(q_all, k_all, assignments_all[m])
                for name, weight in weights.items():
                    if weight > 0:
                        terms_m[name] = _PROTOTYPE_TERM_FUNCTIONS[name](protos, config)
            for name, value in terms_m.items():
                computed.add(name)
                weighted[name] = weighted[name] + weights.get(name, 1.0) * value
                sums[name] = sums[name] + value.detach()
            proto_hits = proto_hits + hits_m.float().mean()
        num_sets = len(prototype_sets)
        for name in TERM_NAMES[1:]:  # fixed order: the same float sum as before
            if name in computed:
                contributions[name] = weighted[name] / num_sets
                total = total + contributions[name]
        sums = {name: value / num_sets for name, value in sums.items()}
        proto_hits = proto_hits / num_sets

    # One device-to-host copy for every logged number.
    logged = torch.stack(
        [info.detach(), *(sums[name] for name in TERM_NAMES[1:]), instance_hits, proto_hits]
    ).tolist()
    return LossOutput(
        total=total,
        terms=dict(zip(TERM_NAMES, logged[: len(TERM_NAMES)])),
        instance_accuracy=100.0 * logged[-2],
        prototype_accuracy=100.0 * logged[-1] if use_prototypes else None,
        contributions=contributions,
    )


def _check_prototype_sets(q: Tensor, prototype_sets: Sequence[PrototypeSet], r: int) -> None:
    if len(prototype_sets) == 0:
        raise ValueError(
            "prototype_sets must hold at least one PrototypeSet for methods 'pcl' and 'pauc' "
            "outside warm-up"
        )
    for m, pset in enumerate(prototype_sets):
        if not isinstance(pset, PrototypeSet):
            raise ValueError(
                f"prototype_sets[{m}] must be a PrototypeSet, got {type(pset).__name__}"
            )
        _check_prototype_inputs(
            q,
            pset.prototypes,
            pset.concentration,
            pset.assignment,
            r,
            check_range=False,
            prefix=f"prototype_sets[{m}].",
        )
    check_assignment_range(
        [f"prototype_sets[{m}].assignment" for m in range(len(prototype_sets))],
        [pset.assignment for pset in prototype_sets],
        [pset.prototypes.shape[0] for pset in prototype_sets],
    )
