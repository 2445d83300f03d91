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

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto``: bf16 on a GPU that supports it, else fp32; any other value is checked."""
    if precision == "auto":
        device = torch.device(device)
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {PRECISIONS}, got {precision!r}")
    return precision


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
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    shuffle_across_workers: bool = False,
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
        precision: ``fp32``, or ``bf16``/``fp16`` autocast around the two encoders (mixed
            precision, as lightly and solo-learn train); the embeddings are cast to float32
            before the loss, so the losses, the queue and the prototypes stay float32.
        scaler: fp16's ``torch.amp.GradScaler``. A step whose scaled gradients overflow is
            skipped (no optimiser step, no momentum update) and reported in ``skipped``.
        shuffle_across_workers: MoCo's shuffle-BN across workers for the key encoder (see
            :meth:`~pauc_ray.model.moco.MoCo.forward`).
    """
    dtype = _DTYPES.get(precision)
    with torch.autocast(x_q.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        q, k = model(
            x_q, x_k, query_encoder=query_encoder, shuffle_across_workers=shuffle_across_workers
        )
    q, k = q.float(), k.float()
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
    skipped = False
    if scaler is not None and scaler.is_enabled():
        scale = scaler.get_scale()
        scaler.scale(out.total).backward()
        scaler.step(optimizer)  # skipped by the scaler when a gradient is inf or NaN
        scaler.update()
        skipped = scaler.get_scale() < scale  # the scale drops exactly when it skipped
    else:
        out.total.backward()
        optimizer.step()
    if not skipped:
        model.momentum_update()
    model.enqueue(gather_keys(k) if gather_keys is not None else k)
    return dataclasses.replace(out, skipped=skipped) if skipped else out
