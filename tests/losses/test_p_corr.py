"""p-corr (Eq. 6): reference values, gradients, edge cases, behaviour, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_references import p_corr_ref, unit_rows

from pauc_ray.losses import p_corr


@pytest.mark.parametrize(("num", "dim"), [(2, 2), (5, 3), (12, 8), (30, 16)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_matches_reference(generator, num, dim, temperature):
    protos = unit_rows(generator, num, dim)
    expected = p_corr_ref(protos, temperature)
    assert p_corr(protos, temperature).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_float32_matches_reference_at_batch_scale(generator):
    # P = 256 prototypes as in a full batch: the O(P D) pair sum stays accurate in float32.
    protos = unit_rows(generator, 256, 128)
    expected = p_corr(protos, 0.1).item()
    assert p_corr(protos.float(), 0.1).item() == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(p_corr_ref(protos[:20], 0.1), rel=0.5)  # same scale


def test_gradcheck(generator):
    protos = unit_rows(generator, 5, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: p_corr(x, 0.5), (protos,))


def test_identical_prototypes_are_finite(generator):
    protos = unit_rows(generator, 1, 4, torch.float32).expand(5, -1).clone().requires_grad_()
    loss = p_corr(protos, 0.1)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5)  # KL of equal distributions
    assert torch.isfinite(protos.grad).all()


@pytest.mark.parametrize("num", [0, 1])
def test_fewer_than_two_prototypes_gives_connected_zero(num):
    protos = torch.randn(num, 3).requires_grad_()
    loss = p_corr(protos)
    loss.backward()
    assert loss.item() == 0.0
    assert protos.grad is not None and (protos.grad == 0).all()


def test_optimisation_lowers_loss(generator):
    raw = (torch.ones(6, 5) + 0.1 * torch.randn(6, 5, generator=generator)).requires_grad_()
    opt = torch.optim.Adam([raw], lr=0.05)
    before = p_corr(F.normalize(raw, dim=1), 0.1).item()
    for _ in range(20):
        opt.zero_grad()
        p_corr(F.normalize(raw, dim=1), 0.1).backward()
        opt.step()
    assert p_corr(F.normalize(raw, dim=1), 0.1).item() < before - 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"protos": torch.zeros(2, 3, 4)}, "protos"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"protos": torch.zeros(3, 4)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        p_corr(**args)
