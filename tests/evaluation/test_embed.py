"""embed_arrays: the batch size is a speed choice only; the device picks it when unset."""

from __future__ import annotations

import numpy as np
import torch

from pauc_ray.data.augment import EvalTransform
from pauc_ray.evaluation.embed import ACCELERATOR_BATCH, CPU_BATCH, default_batch, embed_arrays
from pauc_ray.model.backbones import EncoderSpec, build_encoder


def test_default_batch_by_device():
    assert default_batch("cpu") == CPU_BATCH
    assert default_batch(torch.device("cpu")) == CPU_BATCH
    assert default_batch("cuda:1") == ACCELERATOR_BATCH  # only the type is read
    assert CPU_BATCH < ACCELERATOR_BATCH


def test_embeddings_do_not_depend_on_the_batch_and_modes_are_restored():
    spec = EncoderSpec(
        backbone="convnet", input_kind="image", input_shape=(1, 12, 12), embedding_dim=16, width=8
    )
    encoder = build_encoder(spec, seed=0).train()
    images = np.random.default_rng(0).integers(0, 256, (300, 1, 12, 12), dtype=np.uint8)
    by_default = embed_arrays(encoder, images, EvalTransform())
    in_fives = embed_arrays(encoder, images, EvalTransform(), batch=5)
    assert by_default.shape == (300, 16) and by_default.dtype == np.float32
    np.testing.assert_allclose(by_default, in_fives, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(by_default, axis=1), 1.0, rtol=1e-5)
    assert encoder.training  # eval mode inside, the caller's mode after


def test_no_rows_give_an_empty_array():
    out = embed_arrays(torch.nn.Linear(3, 2), np.zeros((0, 3), np.float32))
    assert out.shape[0] == 0
