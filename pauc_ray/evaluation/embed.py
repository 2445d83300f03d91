"""Frozen-encoder embeddings: the one batched, no-grad, eval-mode forward everything shares."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pauc_ray.model.backbones import represent

# Rows per forward when the caller does not say. On a CPU, small batches keep a layer's
# activations in cache: the Fashion-MNIST ConvNet (width 32, channels_last, one thread) embeds
# ~5,000 images/s at 64-128 rows against ~2,800 at 1,024 (benchmarks/RESULTS.md, 2026-12-03).
# Accelerators want large batches to fill the device.
CPU_BATCH = 128
ACCELERATOR_BATCH = 1024


def default_batch(device: str | torch.device) -> int:
    """Rows per forward for :func:`embed_arrays` on ``device`` when none is given."""
    return CPU_BATCH if torch.device(device).type == "cpu" else ACCELERATOR_BATCH


@torch.no_grad()
def embed_arrays(
    encoder: nn.Module,
    inputs: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    batch: int | None = None,
    representation: str = "projection",
) -> np.ndarray:
    """L2-normalised (N, D) float32 embeddings of ``inputs`` (N, ...), in eval mode.

    ``batch`` rows go through the encoder at a time (None: :func:`default_batch` of
    ``device``).

    ``transform`` (e.g. :class:`~pauc_ray.data.augment.EvalTransform`) maps a batch tensor to
    the encoder's input; ``representation`` is ``"projection"`` (the encoder's output) or
    ``"backbone"`` (see :func:`~pauc_ray.model.backbones.represent`). The encoder's train/eval mode is restored afterwards.
    """
    batch = default_batch(device) if batch is None else batch
    was_training = encoder.training
    encoder.eval()
    out = []
    try:
        for i in range(0, len(inputs), batch):
            x = torch.as_tensor(np.array(inputs[i : i + batch])).to(device)
            x = transform(x) if transform else x
            out.append(F.normalize(represent(encoder, x, representation), dim=1).cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
