"""The raw-input and random-init baselines against slow obvious references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pauc_ray.data.augment import EvalTransform
from pauc_ray.data.parquet_io import SplitArrays
from pauc_ray.evaluation.baselines import baseline_knn, raw_input_features
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.model.backbones import EncoderSpec, build_encoder


def _split(rng, n, offset=0):
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 1, 8, 8)).astype(np.uint8)
    for i, label in enumerate(labels):  # a class-dependent bright band
        images[i, 0, 2 * label : 2 * label + 2] += 150
    return SplitArrays(np.arange(offset, offset + n), images, labels)


def _knn_loop(train_x, train_y, test_x, test_y, k, temperature):
    """Weighted cosine kNN, one query at a time."""
    hits = 0
    for x, y in zip(test_x, test_y):
        sims = train_x @ x / (np.linalg.norm(train_x, axis=1) * np.linalg.norm(x))
        top = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(train_y.max() + 1)
        for i in top:
            votes[train_y[i]] += np.exp(sims[i] / temperature)
        hits += int(np.argmax(votes) == y)
    return 100.0 * hits / len(test_y)


def test_baselines_match_references(rng):
    train, test = _split(rng, 60), _split(rng, 20, offset=60)
    spec = EncoderSpec("convnet", "image", (1, 8, 8), 16, 2, width=4)
    transform = EvalTransform()
    got = baseline_knn(train, test, spec, seed=3, transform=transform, k=5)
    raw = _knn_loop(
        train.inputs.reshape(60, -1).astype(float), train.labels,
        test.inputs.reshape(20, -1).astype(float), test.labels, 5, 0.07,
    )  # fmt: skip
    assert got["raw_knn_top1"] == pytest.approx(raw)
    assert got["raw_knn_top1"] > 60  # the band makes raw pixels informative
    torch.manual_seed(3)  # the run's initialisation, as the trainer makes it
    encoder = build_encoder(spec)
    a = embed_arrays(encoder, train.inputs, transform, representation="backbone")
    b = embed_arrays(encoder, test.inputs, transform, representation="backbone")
    want = knn_classify(a, train.labels, b, test.labels, k=5).top1
    assert got["random_init_knn_top1"] == pytest.approx(want)


def test_raw_input_features_flatten_without_scaling():
    x = np.arange(2 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 1, 2, 2)
    np.testing.assert_array_equal(raw_input_features(x), [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert raw_input_features(x).dtype == np.float32
