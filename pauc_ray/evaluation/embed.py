"""Frozen-encoder embeddings: the one batched, no-grad, eval-mode forward everything shares."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pauc_ray.model.backbones import represent


@torch.no_grad()
def embed_arrays(
    encoder: nn.Module,
    inputs: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    batch: int = 1024,
    representation: str = "projection",
) -> np.ndarray:
    """L2-normalised (N, D) float32 embeddings of ``inputs`` (N, ...), in eval mode.

    ``transform`` (e.g. :class:`~pauc_ray.data.augment.EvalTransform`) maps a batch tensor to
    the encoder's input; ``representation`` is ``"projection"`` (the encoder's output) or
    ``"backbone"`` (see :func:`~pauc_ray.model.backbones.represent`). The encoder's train/eval mode is restored afterwards.
    """
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
