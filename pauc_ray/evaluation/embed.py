"""Frozen-encoder embeddings: the one batched, no-grad, eval-mode forward everything shares."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def embed_arrays(
    encoder: nn.Module,
    inputs: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    batch: int = 1024,
) -> np.ndarray:
    """L2-normalised (N, D) float32 embeddings of ``inputs`` (N, ...), in eval mode.

    ``transform`` (e.g. :class:`~pauc_ray.data.augment.EvalTransform`) maps a batch tensor to
    the encoder's input; the encoder's train/eval mode is restored afterwards.
    """
    was_training = encoder.training
    encoder.eval()
    out = []
    for i in range(0, len(inputs), batch):
        x = torch.as_tensor(np.array(inputs[i : i + batch])).to(device)
        out.append(F.normalize(encoder(transform(x) if transform else x), dim=1).cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
