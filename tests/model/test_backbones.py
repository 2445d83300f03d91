"""Encoders: backbone features vs projection, shapes for small images, seeded initialisation,
and the exported model's two representations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pauc_ray.export import export_model, load_exported_model
from pauc_ray.model.backbones import EncoderSpec, build_encoder, represent


@pytest.mark.parametrize(
    ("backbone", "shape", "features"),
    [
        ("convnet", (1, 8, 8), 64),
        ("convnet", (1, 28, 28), 64),
        ("convnet", (3, 32, 32), 64),
        ("resnet18", (1, 8, 8), 512),
        ("mlp", (1, 8, 8), 24),
    ],
)
def test_features_and_projection_shapes(backbone, shape, features):
    spec = EncoderSpec(
        backbone, "image", shape, embedding_dim=16, bn_groups=1, hidden=(24,), width=8
    )
    encoder = build_encoder(spec).eval()
    x = torch.randn(4, *shape)
    assert encoder.feature_dim == features and encoder.embedding_dim == 16
    assert encoder.features(x).shape == (4, features)
    assert encoder(x).shape == (4, 16)
    # the projection is the head applied to the features, nothing else
    torch.testing.assert_close(encoder(x), encoder.head(encoder.features(x)))
    with pytest.raises(ValueError, match="x must be"):
        encoder(torch.randn(4, 2, *shape[1:]))


def test_mlp_head_is_moco_v2s_and_linear_is_one_map():
    spec = EncoderSpec("convnet", "image", (1, 8, 8), 16, 1, width=4)
    mlp = build_encoder(spec).head
    assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Linear"]
    assert mlp[0].in_features == mlp[0].out_features == 32 and mlp[2].out_features == 16
    linear = build_encoder(
        EncoderSpec("convnet", "image", (1, 8, 8), 16, 1, width=4, head="linear")
    )
    assert isinstance(linear.head, torch.nn.Linear)


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    spec = EncoderSpec("convnet", "image", (1, 8, 8), 16, 2, width=4)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = build_encoder(spec, seed=7), build_encoder(spec, seed=7)
    assert torch.rand(1) == expected_next  # the global generator did not move
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb)
    c = build_encoder(spec, seed=8)
    assert not torch.equal(a.head[0].weight, c.head[0].weight)
    # the same weights as the trainer's manual_seed(seed) then build
    torch.manual_seed(7)
    torch.testing.assert_close(build_encoder(spec).head[0].weight, a.head[0].weight)


def test_represent_and_unknown_representation():
    spec = EncoderSpec("convnet", "image", (1, 8, 8), 16, 1, width=4)
    encoder = build_encoder(spec).eval()
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(represent(encoder, x, "backbone"), encoder.features(x))
    torch.testing.assert_close(represent(encoder, x, "projection"), encoder(x))
    with pytest.raises(ValueError, match="representation"):
        represent(encoder, x, "logits")
    with pytest.raises(ValueError, match="no backbone features"):
        represent(torch.nn.Linear(64, 4), x.flatten(1), "backbone")


def test_exported_model_embeds_either_representation(tmp_path):
    spec = EncoderSpec("convnet", "image", (1, 8, 8), 16, 2, width=4)
    encoder = build_encoder(spec, seed=0)
    export_model(tmp_path / "export", encoder.state_dict(), spec, {"method": "pauc"})
    model = load_exported_model(tmp_path)
    x = torch.randn(5, 1, 8, 8)
    encoder.eval()
    backbone, projection = model.embed(x), model.embed(x, representation="projection")
    assert backbone.shape == (5, 32) and projection.shape == (5, 16)
    assert model.embedding_dim() == 32 and model.embedding_dim("projection") == 16
    torch.testing.assert_close(backbone, F.normalize(encoder.features(x), dim=1))
    torch.testing.assert_close(projection, F.normalize(encoder(x), dim=1))
