"""p-uniform (Eq. 5, log form): reference values, gradients, edge cases, behaviour, checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_references import p_uniform_ref, unit_rows

from pauc_ray.losses import p_uniform, pairwise_sq_distances


@pytest.mark.parametrize(("num", "dim"), [(2, 2), (5, 3), (12, 8)])
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_matches_reference(generator, num, dim, t):
    protos = unit_rows(generator, num, dim)
    assert p_uniform(protos, t).item() == pytest.approx(p_uniform_ref(protos, t), rel=1e-10)


def test_pairwise_distances_are_non_negative_and_exact(generator):
    x = unit_rows(generator, 6, 3)
    x = torch.cat([x, x[:2]])  # duplicates: distance exactly 0 after the clamp
    dist = pairwise_sq_distances(x)
    assert (dist >= 0).all()
    torch.testing.assert_close(dist, torch.cdist(x, x).pow(2), atol=1e-12, rtol=0)


def test_gradcheck(generator):
    protos = unit_rows(generator, 5, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: p_uniform(x, 2.0), (protos,))


def test_identical_prototypes_are_finite(generator):
    protos = unit_rows(generator, 1, 4, torch.float32).expand(5, -1).clone().requires_grad_()
    loss = p_uniform(protos, 2.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # log mean exp(0)
    assert torch.isfinite(protos.grad).all()


@pytest.mark.parametrize("num", [0, 1])
def test_fewer_than_two_prototypes_gives_connected_zero(num):
    protos = torch.randn(num, 3).requires_grad_()
    loss = p_uniform(protos)
    loss.backward()
    assert loss.item() == 0.0
    assert protos.grad is not None and (protos.grad == 0).all()


def test_optimisation_lowers_loss(generator):
    # Start clumped around one direction; the loss spreads the prototypes out.
    raw = (torch.ones(8, 4) + 0.1 * torch.randn(8, 4, generator=generator)).requires_grad_()
    opt = torch.optim.Adam([raw], lr=0.05)
    before = p_uniform(F.normalize(raw, dim=1)).item()
    for _ in range(20):
        opt.zero_grad()
        p_uniform(F.normalize(raw, dim=1)).backward()
        opt.step()
    assert p_uniform(F.normalize(raw, dim=1)).item() < before - 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"t": 0.0}, "t"), ({"t": -2.0}, "t"), ({"protos": torch.zeros(4)}, "protos")],
)
def test_bad_arguments(kwargs, name):
    args = {"protos": torch.zeros(3, 4)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        p_uniform(**args)


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_eq5_as_written_matches_reference_and_has_gradients(generator, t):
    protos = unit_rows(generator, 7, 4)
    got = p_uniform(protos, t, log=False)
    assert got.item() == pytest.approx(p_uniform_ref(protos, t, log=False), rel=1e-10)
    assert got.item() == pytest.approx(torch.exp(p_uniform(protos, t)).item(), rel=1e-10)
    x = protos.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda c: p_uniform(c, t, log=False), (x,))
