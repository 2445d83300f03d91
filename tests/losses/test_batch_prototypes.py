"""Batch prototypes: per-cluster normalised means, gradients through them, argument checks."""

from __future__ import annotations

import pytest
import torch
from loss_references import batch_prototypes_ref, p_align_ref, p_corr_ref, p_uniform_ref, unit_rows

from pauc_ray.losses import BatchPrototypes, batch_prototypes, p_align, p_corr, p_uniform


@pytest.mark.parametrize(
    ("batch", "dim", "num_clusters"), [(1, 3, 1), (6, 4, 3), (20, 8, 7), (16, 5, 100)]
)
def test_matches_reference(generator, batch, dim, num_clusters):
    q, k = unit_rows(generator, batch, dim), unit_rows(generator, batch, dim)
    assignment = torch.randint(0, num_clusters, (batch,), generator=generator)
    ids, cq, ck, counts = batch_prototypes_ref(q, k, assignment)
    protos = batch_prototypes(q, k, assignment)
    assert isinstance(protos, BatchPrototypes)
    assert protos.cluster_ids.tolist() == ids
    assert protos.counts.tolist() == counts
    torch.testing.assert_close(protos.query, torch.tensor(cq, dtype=torch.float64))
    torch.testing.assert_close(protos.key, torch.tensor(ck, dtype=torch.float64))


def test_query_has_gradient_and_key_has_none(generator):
    q = unit_rows(generator, 6, 4).requires_grad_()
    k = unit_rows(generator, 6, 4).requires_grad_()
    protos = batch_prototypes(q, k, torch.tensor([3, 3, 9, 0, 9, 9]))
    assert protos.query.requires_grad
    assert not protos.key.requires_grad
    assert protos.cluster_ids.tolist() == [0, 3, 9]
    assert protos.counts.tolist() == [1, 2, 3]


def test_members_that_cancel_give_a_finite_gradient():
    q = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    protos = batch_prototypes(q, q.detach(), torch.tensor([0, 0, 1]))
    assert protos.query[0].abs().sum() == 0  # zero mean normalises to zero, not NaN
    (
        p_uniform(protos.query) + p_align(protos.query, protos.key, 1.0) + p_corr(protos.query)
    ).backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("term", ["p_align", "p_uniform", "p_corr"])
def test_gradcheck_through_batch_prototypes(generator, term):
    q = unit_rows(generator, 7, 4).requires_grad_()
    k = unit_rows(generator, 7, 4)
    assignment = torch.tensor([0, 2, 2, 5, 5, 5, 1])

    def fn(q):
        protos = batch_prototypes(q, k, assignment)
        if term == "p_align":
            return p_align(protos.query, protos.key, 2.0)
        if term == "p_uniform":
            return p_uniform(protos.query, 2.0)
        return p_corr(protos.query, 0.5)

    assert torch.autograd.gradcheck(fn, (q,))


def test_terms_through_batch_prototypes_match_references(generator):
    q, k = unit_rows(generator, 12, 5), unit_rows(generator, 12, 5)
    assignment = torch.randint(0, 4, (12,), generator=generator)
    _, cq, ck, _ = batch_prototypes_ref(q, k, assignment)
    protos = batch_prototypes(q, k, assignment)
    assert p_align(protos.query, protos.key, 2.0).item() == pytest.approx(p_align_ref(cq, ck, 2.0))
    assert p_uniform(protos.query, 2.0).item() == pytest.approx(p_uniform_ref(cq, 2.0))
    assert p_corr(protos.query, 0.1).item() == pytest.approx(p_corr_ref(cq, 0.1))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"q": torch.zeros(4)}, "q"),
        ({"k": torch.zeros(4, 3)}, "k"),
        ({"assignment": torch.zeros(3, dtype=torch.long)}, "assignment"),
        ({"assignment": torch.zeros(4)}, "assignment"),
        ({"assignment": torch.zeros(4, dtype=torch.long, device="meta")}, "assignment"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {
        "q": torch.zeros(4, 4),
        "k": torch.zeros(4, 4),
        "assignment": torch.zeros(4, dtype=torch.long),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        batch_prototypes(**args)
