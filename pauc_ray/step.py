"""One optimisation step of MoCo / PCL / PAUC: the code every trainer shares.

The blob experiment and the Ray trainer both call :func:`train_step`, so the method is defined
once: forward both encoders, the loss of Eq. 7, backward, optimiser step, momentum update, and
the queue update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from pauc_ray.config import LossConfig
from pauc_ray.losses import LossOutput, PrototypeSet, pauc_loss, term_gradient_norms
from pauc_ray.model.moco import MoCo


def train_step(
    model: MoCo,
    x_q: torch.Tensor,
    x_k: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    prototype_sets: Sequence[PrototypeSet],
    *,
    method: str,
    loss_config: LossConfig,
    warmup: bool,
    generator: torch.Generator | None = None,
    query_encoder: torch.nn.Module | None = None,
    gather_keys: Callable[[torch.Tensor], torch.Tensor] | None = None,
    gather_distributed: bool = False,
    measure_gradients: bool = False,
) -> LossOutput:
    """Runs one step and returns the loss terms.

    Args:
        model: the (unwrapped) MoCo pair; its momentum update and queue are applied here.
        x_q, x_k: two augmented views of the same B samples.
        prototype_sets: this batch's view of each clustering (empty for MoCo or in warm-up).
        query_encoder: runs ``f_q`` instead of ``model.encoder_q`` (a DDP wrapper of it).
        gather_keys: maps local keys (B, D) to the keys of every worker for the queue; the
            identity in one process.
        gather_distributed: compute batch prototypes over the global batch (see the loss).
        measure_gradients: fill ``gradient_norms`` with each term's gradient norm w.r.t. the
            query embeddings (:func:`~pauc_ray.losses.term_gradient_norms`); costs one
            backward through the loss (not the encoder) per term. Every process of a
            distributed run must pass the same value at the same step.
    """
    q, k = model(x_q, x_k, query_encoder=query_encoder)
    out = pauc_loss(
        q,
        k,
        model.negatives(),
        prototype_sets,
        method=method,
        config=loss_config,
        warmup=warmup,
        generator=generator,
        gather_distributed=gather_distributed,
    )
    if measure_gradients:
        out = dataclasses.replace(out, gradient_norms=term_gradient_norms(out, q))
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    optimizer.step()
    model.momentum_update()
    model.enqueue(gather_keys(k) if gather_keys is not None else k)
    return out
