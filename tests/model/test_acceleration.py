"""pauc_ray.model.acceleration: channels_last and torch.compile change no result beyond
rounding, and leave parameter names (checkpoints, exports) as they were."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet
from pauc_ray.model.acceleration import (
    compile_encoders,
    resolve_channels_last,
    to_channels_last,
    use_channels_last,
)
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.encoders import MLPEncoder
from pauc_ray.model.moco import MoCo
from pauc_ray.step import train_step

B = 16


def _sets(dim: int, k: int = 4) -> list[PrototypeSet]:
    g = torch.Generator().manual_seed(1)
    c = F.normalize(torch.randn(k, dim, generator=g), dim=1)
    return [PrototypeSet(c, torch.full((k,), 0.2), torch.randint(0, k, (B,), generator=g))]


def _step(model: MoCo, x_q, x_k, sets):
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1, momentum=0.9)
    cfg = LossConfig(warmup_epochs=0)
    return train_step(model, x_q, x_k, opt, sets, method="pauc", loss_config=cfg, warmup=False)


def test_to_channels_last_reorders_image_batches_only():
    x = torch.rand(2, 3, 5, 5)
    y = to_channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    v = torch.rand(4, 7)
    assert to_channels_last(v) is v


def test_a_channels_last_step_matches_the_contiguous_one():
    spec = EncoderSpec("convnet", "image", (1, 28, 28), embedding_dim=32)
    eager = MoCo(build_encoder(spec, seed=0), queue_size=64, momentum=0.9).eval()
    nhwc = MoCo(build_encoder(spec, seed=0), queue_size=64, momentum=0.9).eval()
    nhwc.load_state_dict(eager.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x_q, x_k = torch.rand(B, 1, 28, 28, generator=g), torch.rand(B, 1, 28, 28, generator=g)
    want = _step(eager, x_q, x_k, _sets(32))
    got = _step(nhwc, to_channels_last(x_q), to_channels_last(x_k), _sets(32))
    torch.testing.assert_close(got.total, want.total, atol=1e-5, rtol=1e-5)
    assert list(nhwc.state_dict()) == list(eager.state_dict())
    for a, b in zip(nhwc.encoder_q.parameters(), eager.encoder_q.parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # NHWC kernels sum differently


@pytest.mark.slow
def test_compiled_encoders_train_like_eager_ones_and_keep_their_names():
    torch.manual_seed(0)
    eager = MoCo(MLPEncoder(5, hidden=(16,), embedding_dim=8), queue_size=32, momentum=0.9)
    compiled = MoCo(MLPEncoder(5, hidden=(16,), embedding_dim=8), queue_size=32, momentum=0.9)
    compiled.load_state_dict(eager.state_dict())
    eager.eval(), compiled.eval()
    names = list(compiled.state_dict())
    compile_encoders(compiled.encoder_q, compiled.encoder_k)
    x_q, x_k = torch.randn(B, 5), torch.randn(B, 5)
    want = _step(eager, x_q, x_k, _sets(8))
    got = _step(compiled, x_q, x_k, _sets(8))
    torch.testing.assert_close(got.total, want.total, atol=1e-5, rtol=1e-5)
    assert list(compiled.state_dict()) == names  # checkpoints and exports read the same
    for a, b in zip(compiled.encoder_q.parameters(), eager.encoder_q.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("setting", "kind", "device", "want"),
    [
        (None, "image", "cpu", True),  # the default: on CPUs
        (None, "image", "cuda", False),  # GPUs: off until measured there
        (True, "image", "cuda", True),
        (False, "image", "cpu", False),
        (True, "vector", "cpu", False),  # vectors have no channels
        (None, "vector", "cpu", False),
    ],
)
def test_channels_last_resolves_per_device_and_input(setting, kind, device, want):
    assert resolve_channels_last(setting, kind, torch.device(device)) is want


def test_use_channels_last_converts_image_encoders_on_cpus_only():
    spec = EncoderSpec("convnet", "image", (1, 8, 8), width=4, embedding_dim=8)
    encoder = build_encoder(spec, seed=0)
    assert use_channels_last(encoder, "image", "cpu")
    conv = encoder.backbone[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    mlp = MLPEncoder(5, hidden=(16,), embedding_dim=8)
    assert not use_channels_last(mlp, "vector", "cpu")
