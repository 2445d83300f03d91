"""The paper's synthetic data: isotropic Gaussian blobs in 3-D (Sec. 3, Fig. 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_blobs


@dataclass(frozen=True)
class BlobData:
    """``x`` (N, dim) float32 standardised per feature; ``labels`` (N,) int64; ``ids`` 0..N-1."""

    x: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1


def make_blob_data(
    classes: int, samples_per_class: int = 1000, dim: int = 3, seed: int = 0
) -> BlobData:
    """``classes`` isotropic Gaussian blobs (scikit-learn's ``make_blobs``: unit standard
    deviation, centres uniform in [-10, 10]^dim), then standardised to zero mean and unit
    variance per feature, as the paper's tiny experiment does.
    """
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    if samples_per_class < 1 or dim < 1:
        raise ValueError(f"samples_per_class and dim must be >= 1, got {samples_per_class}, {dim}")
    x, labels = make_blobs(
        n_samples=[samples_per_class] * classes, n_features=dim, random_state=seed
    )
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    ids = np.arange(len(x), dtype=np.int64)
    ids.setflags(write=False)
    return BlobData(x=x, labels=labels, ids=ids)
