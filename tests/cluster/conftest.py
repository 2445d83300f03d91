"""Fixtures for the clustering tests: one faiss thread, small seeded data."""

from __future__ import annotations

import faiss
import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def single_faiss_thread():
    """Tiny problems gain nothing from threads, and on a shared CPU spinning OpenMP threads
    waiting on descheduled ones make each k-means iteration cost a scheduler time slice."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


def _make_blobs(
    num_blobs: int, per_blob: int, dim: int, seed: int = 0, spread: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """(num_blobs * per_blob, dim) float32 L2-normalised points around well-separated centres,
    and their (N,) int64 true labels."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:num_blobs]  # orthonormal rows
    labels = np.repeat(np.arange(num_blobs), per_blob)
    x = centres[labels] + spread * rng.standard_normal((len(labels), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int64)


@pytest.fixture
def make_blobs():
    """Factory: ``make_blobs(num_blobs, per_blob, dim, seed=0, spread=0.01) -> (x, labels)``."""
    return _make_blobs
