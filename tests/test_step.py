"""pauc_ray.step.train_step against the same step written out by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet, pauc_loss
from pauc_ray.model.encoders import MLPEncoder
from pauc_ray.model.moco import MoCo
from pauc_ray.step import train_step

DIM, B, K = 6, 8, 3


def _model(seed: int = 0, queue_size: int = 12) -> MoCo:
    torch.manual_seed(seed)
    encoder = MLPEncoder(5, hidden=(16,), embedding_dim=DIM)
    return MoCo(encoder, queue_size=queue_size, momentum=0.9)


def _sets(seed: int = 1) -> list[PrototypeSet]:
    g = torch.Generator().manual_seed(seed)
    c = F.normalize(torch.randn(K, DIM, generator=g), dim=1)
    return [PrototypeSet(c, torch.full((K,), 0.2), torch.randint(0, K, (B,), generator=g))]


@pytest.mark.parametrize("method", ["moco", "pcl", "pauc"])
def test_step_is_loss_backward_sgd_momentum_update_and_enqueue(method):
    model, reference = _model(), _model()
    reference.load_state_dict(model.state_dict())
    model.eval(), reference.eval()  # no shuffle-BN randomness: both see the same keys
    x_q, x_k = torch.randn(B, 5), torch.randn(B, 5)
    config = LossConfig(warmup_epochs=0)
    sets = _sets() if method != "moco" else []
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1, momentum=0.9)
    out = train_step(model, x_q, x_k, opt, sets, method=method, loss_config=config, warmup=False)

    # by hand: forward, the loss of Eq. 7, plain SGD (first step: momentum buffer = gradient)
    old_k = copy.deepcopy(reference.encoder_k)
    q, k = reference(x_q, x_k)
    loss = pauc_loss(q, k, reference.negatives(), sets, method=method, config=config)
    loss.total.backward()
    with torch.no_grad():
        for p in reference.encoder_q.parameters():
            p -= 0.1 * p.grad
    torch.testing.assert_close(out.total, loss.total)
    for got, want in zip(model.encoder_q.parameters(), reference.encoder_q.parameters()):
        torch.testing.assert_close(got, want)
    for got, p_k, p_q in zip(
        model.encoder_k.parameters(), old_k.parameters(), reference.encoder_q.parameters()
    ):
        torch.testing.assert_close(got, 0.9 * p_k + 0.1 * p_q)
    torch.testing.assert_close(model.negatives(), k)  # the batch's keys were enqueued
    assert int(model.queue_ptr) == B


def test_gather_keys_decides_what_enters_the_queue():
    model = _model(queue_size=32)
    model.eval()
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    gathered = []

    def gather(keys):
        gathered.append(keys)
        return torch.cat([keys, -keys])  # as if a second worker held the negated keys

    x = torch.randn(B, 5)
    train_step(
        model, x, x, opt, [], method="moco", loss_config=LossConfig(), warmup=True,
        gather_keys=gather,
    )  # fmt: skip
    assert len(gathered) == 1 and model.negatives().shape == (2 * B, DIM)
    torch.testing.assert_close(model.negatives()[B:], -model.negatives()[:B])


def test_measured_gradient_norms_name_each_computed_term():
    model = _model()
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    x = torch.randn(B, 5)
    common = dict(method="pauc", loss_config=LossConfig(warmup_epochs=0), warmup=False)
    train_step(model, x, x, opt, _sets(), **common)  # fills the queue: InfoNCE has negatives
    out = train_step(model, x, x, opt, _sets(), measure_gradients=True, **common)
    assert set(out.gradient_norms) == {"info_nce", "proto_nce", "p_align", "p_uniform", "p_corr"}
    assert all(v >= 0 for v in out.gradient_norms.values())
    assert out.gradient_norms["info_nce"] > 0
    assert train_step(model, x, x, opt, _sets(), **common).gradient_norms == {}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_keep_the_loss_in_float32(precision):
    model = _model(queue_size=32)
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.encoder_q.parameters()]
    x = torch.randn(B, 5)
    common = dict(method="pauc", loss_config=LossConfig(warmup_epochs=0), warmup=False)
    out = train_step(model, x, x + 0.01, opt, _sets(), precision=precision, **common)
    assert out.total.dtype == torch.float32 and torch.isfinite(out.total)
    assert model.queue.dtype == torch.float32 and not out.skipped
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder_q.parameters()))
    # the autocast forward is close to the float32 one (bf16 keeps ~3 significant digits)
    q32, _ = model(x, x)
    with torch.autocast("cpu", dtype=torch.bfloat16 if precision == "bf16" else torch.float16):
        q16, _ = model(x, x)
    assert (q16.float() - q32).abs().max() < 0.05


def test_an_overflowing_fp16_step_is_skipped_not_applied():
    model = _model(queue_size=32)
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)  # scaled gradients overflow
    x = torch.randn(B, 5)
    model.enqueue(F.normalize(torch.randn(B, DIM), dim=1))  # negatives: a loss with a gradient
    query = [p.detach().clone() for p in model.encoder_q.parameters()]
    key = [p.detach().clone() for p in model.encoder_k.parameters()]
    out = train_step(
        model, x, x, opt, [], method="moco", loss_config=LossConfig(), warmup=True,
        precision="fp16", scaler=scaler,
    )  # fmt: skip
    assert out.skipped and scaler.get_scale() == 2.0**119
    assert all(torch.equal(a, b) for a, b in zip(query, model.encoder_q.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(key, model.encoder_k.parameters()))
    assert model.negatives().shape[0] == 2 * B  # the keys still enter the queue
    healthy = torch.amp.GradScaler("cpu", init_scale=1.0)
    again = train_step(
        model, x, x, opt, [], method="moco", loss_config=LossConfig(), warmup=True,
        precision="fp16", scaler=healthy,
    )  # fmt: skip
    assert not again.skipped
    assert any(not torch.equal(a, b) for a, b in zip(query, model.encoder_q.parameters()))


def test_precision_auto_is_fp32_on_a_cpu_and_bad_values_are_named():
    from pauc_ray.step import resolve_precision

    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be auto or one of"):
        resolve_precision("fp8", "cpu")
