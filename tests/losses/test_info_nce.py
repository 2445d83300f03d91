"""InfoNCE (Eq. 1) against a per-sample reference, edge cases, behaviour and argument checks."""

from __future__ import annotations

import pytest
import torch
from loss_references import info_nce_ref, unit_rows

from pauc_ray.losses import info_nce, instance_logits


@pytest.mark.parametrize(("batch", "dim", "queue_size"), [(1, 3, 1), (5, 4, 7), (16, 8, 32)])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_matches_reference(generator, batch, dim, queue_size, temperature):
    q, k = unit_rows(generator, batch, dim), unit_rows(generator, batch, dim)
    queue = unit_rows(generator, queue_size, dim)
    expected = info_nce_ref(q, k, queue, temperature)
    assert info_nce(q, k, queue, temperature).item() == pytest.approx(expected, rel=1e-10)
    # float32 agrees to single precision
    got32 = info_nce(q.float(), k.float(), queue.float(), temperature).item()
    assert got32 == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_logits_layout(generator):
    q, k, queue = (unit_rows(generator, n, 6) for n in (4, 4, 9))
    logits = instance_logits(q, k, queue, temperature=0.5)
    assert logits.shape == (4, 10)
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.5)
    torch.testing.assert_close(logits[:, 1:], q @ queue.T / 0.5)


@pytest.mark.parametrize("queue", [None, torch.empty(0, 6, dtype=torch.float64)])
def test_no_negatives_gives_zero(generator, queue):
    q = unit_rows(generator, 4, 6).requires_grad_()
    k = unit_rows(generator, 4, 6)
    assert instance_logits(q, k, queue, 0.2).shape == (4, 1)
    loss = info_nce(q, k, queue, 0.2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(q.grad).all()


def test_gradient_reaches_q_only_through_q(generator):
    q = unit_rows(generator, 5, 4).requires_grad_()
    k = unit_rows(generator, 5, 4)
    queue = unit_rows(generator, 7, 4)
    info_nce(q, k, queue).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_optimisation_lowers_loss(generator):
    raw = torch.randn(8, 6, generator=generator, requires_grad=True)
    k = unit_rows(generator, 8, 6, dtype=torch.float32)
    queue = unit_rows(generator, 32, 6, dtype=torch.float32)
    opt = torch.optim.Adam([raw], lr=0.05)

    def loss_fn():
        return info_nce(torch.nn.functional.normalize(raw, dim=1), k, queue, 0.2)

    before = loss_fn().item()
    for _ in range(20):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert loss_fn().item() < 0.5 * before


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"k": torch.zeros(3, 4)}, "k"),
        ({"queue": torch.zeros(5, 3)}, "queue"),
        ({"queue": torch.zeros(5)}, "queue"),
        ({"q": torch.zeros(4)}, "q"),
        ({"q": torch.zeros(4, 4, dtype=torch.long)}, "q"),
        ({"queue": torch.zeros(5, 4, device="meta")}, "queue"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"q": torch.zeros(4, 4), "k": torch.zeros(4, 4), "queue": torch.zeros(5, 4)}
    args.update(kwargs)
    for fn in (info_nce, instance_logits):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            fn(**args)
