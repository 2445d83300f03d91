"""The two baselines every result is read against, on the same split (DESIGN.md section 1):

- **raw input**: weighted kNN on the raw inputs themselves (pixel values 0..255 flattened, or
  the vectors), with the same k and temperature as the trained encoder's kNN;
- **random init**: the same encoder at the weights training started from
  (:func:`~pauc_ray.model.backbones.build_encoder` with the run's seed), same representation.

A pretraining that beats neither has learned nothing a kNN can use, whatever its loss says.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pauc_ray.data.parquet_io import SplitArrays
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.model.backbones import EncoderSpec, build_encoder

__all__ = ["BASELINE_KEYS", "baseline_knn", "raw_input_features"]

BASELINE_KEYS = ("raw_knn_top1", "random_init_knn_top1")


def raw_input_features(inputs: np.ndarray) -> np.ndarray:
    """(N, C*H*W) or (N, dim) float32: the inputs as they are stored, flattened."""
    return np.asarray(inputs).reshape(len(inputs), -1).astype(np.float32)


def baseline_knn(
    train: SplitArrays,
    test: SplitArrays,
    spec: EncoderSpec,
    seed: int,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
    *,
    k: int = 20,
    temperature: float = 0.07,
    representation: str = "backbone",
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
) -> dict[str, float]:
    """kNN top-1 (%) of the raw inputs and of the random-init encoder.

    Args:
        train, test: the kNN memory and the held-out queries (labelled).
        spec, seed: the encoder and the seed its training started from.
        transform: the encoder's preprocessing (:class:`~pauc_ray.data.augment.EvalTransform`).
        k, temperature, representation: as for the trained encoder's kNN.
        device, batch_size: where the encoder runs and rows per forward (None: the device's
            default).

    Returns:
        ``{"raw_knn_top1": ..., "random_init_knn_top1": ...}``.
    """
    raw = knn_classify(
        raw_input_features(train.inputs),
        train.labels,
        raw_input_features(test.inputs),
        test.labels,
        k=k,
        temperature=temperature,
    )
    encoder = build_encoder(spec, seed=seed).to(device)
    embed = lambda arrays: embed_arrays(  # noqa: E731
        encoder, arrays.inputs, transform, device, batch_size, representation
    )
    initial = knn_classify(
        embed(train), train.labels, embed(test), test.labels, k=k, temperature=temperature
    )
    return {"raw_knn_top1": raw.top1, "random_init_knn_top1": initial.top1}
