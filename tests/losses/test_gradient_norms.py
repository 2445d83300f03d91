"""Per-term gradient norms w.r.t. the query embeddings (pauc_ray.losses.term_gradient_norms)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from loss_references import unit_rows

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet, pauc_loss, term_gradient_norms

CONFIG = LossConfig(num_negative_prototypes=16384, alpha=0.7, beta=0.3, gamma=0.2)


def _problem(generator, batch=16, dim=8, sizes=(4, 6)):
    q = unit_rows(generator, batch, dim).requires_grad_()
    k = F.normalize(q.detach() + 0.3 * unit_rows(generator, batch, dim), dim=1)
    queue = unit_rows(generator, 32, dim)
    sets = [
        PrototypeSet(
            unit_rows(generator, size, dim),
            torch.full((size,), 0.2, dtype=torch.float64),
            torch.randint(0, size, (batch,), generator=generator),
        )
        for size in sizes
    ]
    return q, k, queue, sets


def test_each_norm_is_the_gradient_of_that_term_alone(generator):
    q, k, queue, sets = _problem(generator)
    out = pauc_loss(q, k, queue, sets, method="pauc", config=CONFIG)
    norms = term_gradient_norms(out, q)
    assert set(norms) == {"info_nce", "proto_nce", "p_align", "p_uniform", "p_corr"}
    # the slow obvious reference: each weighted term on its own graph
    for name, weight in (("p_align", 0.7), ("p_uniform", 0.3), ("p_corr", 0.2)):
        zeroed = {w: 0.0 for w in ("alpha", "beta", "gamma")}
        only = dataclasses.replace(CONFIG, **{**zeroed, _weight(name): weight})
        q2 = q.detach().clone().requires_grad_()
        alone = pauc_loss(q2, k, queue, sets, method="pauc", config=only)
        (grad,) = torch.autograd.grad(alone.contributions[name], q2)
        assert norms[name] == pytest.approx(float(grad.norm()), rel=1e-9)
    # the contributions add up to the total, and the graph survives for the real backward
    total = sum(out.contributions.values())
    torch.testing.assert_close(total, out.total)
    out.total.backward()
    assert q.grad is not None


def _weight(name: str) -> str:
    return {"p_align": "alpha", "p_uniform": "beta", "p_corr": "gamma"}[name]


def test_norms_scale_with_the_weights_and_skipped_terms_are_absent(generator):
    q, k, queue, sets = _problem(generator)
    base = term_gradient_norms(pauc_loss(q, k, queue, sets, config=CONFIG), q)
    doubled = dataclasses.replace(CONFIG, alpha=1.4)
    twice = term_gradient_norms(pauc_loss(q, k, queue, sets, config=doubled), q)
    assert twice["p_align"] == pytest.approx(2 * base["p_align"], rel=1e-9)
    assert twice["info_nce"] == pytest.approx(base["info_nce"], rel=1e-12)
    pcl = term_gradient_norms(pauc_loss(q, k, queue, sets, method="pcl", config=CONFIG), q)
    assert set(pcl) == {"info_nce", "proto_nce"}
    moco = term_gradient_norms(pauc_loss(q, k, queue, sets, method="moco", config=CONFIG), q)
    assert set(moco) == {"info_nce"} and moco["info_nce"] > 0
