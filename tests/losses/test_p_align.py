"""p-align (Eq. 4): reference values, gradients (finite at 0), behaviour, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_references import p_align_ref, unit_rows

from pauc_ray.losses import p_align


@pytest.mark.parametrize(("num", "dim"), [(1, 2), (4, 3), (10, 8)])
@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0, 3.0])
def test_matches_reference(generator, num, dim, exponent):
    cq, ck = unit_rows(generator, num, dim), unit_rows(generator, num, dim)
    expected = p_align_ref(cq, ck, exponent)
    assert p_align(cq, ck, exponent).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("exponent", [1.0, 1.5, 2.0, 3.0])
def test_gradcheck(generator, exponent):
    cq = unit_rows(generator, 5, 4).requires_grad_()
    ck = unit_rows(generator, 5, 4)
    assert torch.autograd.gradcheck(lambda x: p_align(x, ck, exponent), (cq,))


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0])
def test_coincident_pairs_have_finite_zero_gradient(generator, exponent):
    cq = unit_rows(generator, 4, 3, torch.float32).requires_grad_()
    ck = cq.detach().clone()
    ck[0] = -ck[0]  # one pair apart, three coincident
    loss = p_align(cq, ck, exponent)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(cq.grad).all()
    assert (cq.grad[1:] == 0).all()
    assert loss.item() == pytest.approx(2.0**exponent / 4, rel=1e-5)


def test_no_prototypes_gives_connected_zero():
    cq = torch.zeros(0, 3, requires_grad=True)
    loss = p_align(cq, torch.zeros(0, 3))
    loss.backward()
    assert loss.item() == 0.0 and cq.grad is not None


def test_optimisation_lowers_loss(generator):
    raw = torch.randn(6, 4, generator=generator, requires_grad=True)
    ck = unit_rows(generator, 6, 4, torch.float32)
    opt = torch.optim.SGD([raw], lr=5.0)
    before = p_align(F.normalize(raw, dim=1), ck).item()
    for _ in range(20):
        opt.zero_grad()
        p_align(F.normalize(raw, dim=1), ck).backward()
        opt.step()
    assert p_align(F.normalize(raw, dim=1), ck).item() < 0.5 * before


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"exponent": 0.0}, "exponent"),
        ({"exponent": -1.0}, "exponent"),
        ({"key_protos": torch.zeros(3, 2)}, "key_protos"),
        ({"query_protos": torch.zeros(3)}, "query_protos"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"query_protos": torch.zeros(3, 4), "key_protos": torch.zeros(3, 4)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        p_align(**args)
