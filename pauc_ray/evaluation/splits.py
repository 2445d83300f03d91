"""The labelled train/test split that the kNN classifier and the linear probe both take."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def labelled_split(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four arrays as tensors (features in ``dtype``, labels int64), with the shapes
    checked: (N, D) and (M, D) features of the same width and one label per row."""
    # copies: the arrays may be read-only (memory-mapped, or Ray's object store), which torch
    # warns about when it shares their memory
    xtr = torch.tensor(np.asarray(train_features), dtype=dtype)
    xte = torch.tensor(np.asarray(test_features), dtype=dtype)
    ytr = torch.tensor(np.asarray(train_labels), dtype=torch.int64)
    yte = torch.tensor(np.asarray(test_labels), dtype=torch.int64)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"train_features and test_features must be (N, D) and (M, D), got "
            f"{tuple(xtr.shape)} and {tuple(xte.shape)}"
        )
    if ytr.shape != (xtr.shape[0],) or yte.shape != (xte.shape[0],):
        raise ValueError("train_labels/test_labels must have one label per feature row")
    return xtr, ytr, xte, yte
