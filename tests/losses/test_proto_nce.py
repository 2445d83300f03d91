"""ProtoNCE (Eq. 2): negative sampling, reference values, edge cases, behaviour, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_references import all_other_prototypes, proto_nce_ref, unit_rows

from pauc_ray.losses import proto_nce, prototype_logits, sample_negative_prototypes


def _problem(generator, batch, dim, num_prototypes, dtype=torch.float64):
    q = unit_rows(generator, batch, dim, dtype)
    prototypes = unit_rows(generator, num_prototypes, dim, dtype)
    concentration = 0.05 + 0.3 * torch.rand(num_prototypes, generator=generator, dtype=dtype)
    assignment = torch.randint(0, num_prototypes, (batch,), generator=generator)
    return q, prototypes, concentration, assignment


# ---------------------------------------------------------------- sampling of negatives


@pytest.mark.parametrize(
    ("batch", "num_prototypes", "num_negatives"),
    [(6, 10, 3), (16, 50, 20), (4, 3, 1), (8, 12, 10), (5, 4, 0)],
)
def test_sampled_negatives_are_distinct_others(batch, num_prototypes, num_negatives):
    assignment = torch.randint(
        0, num_prototypes, (batch,), generator=torch.Generator().manual_seed(1)
    )
    idx = sample_negative_prototypes(
        assignment, num_prototypes, num_negatives, torch.Generator().manual_seed(2)
    )
    assert idx.shape == (batch, min(num_negatives, num_prototypes - 1))
    assert idx.dtype == torch.long
    assert ((idx >= 0) & (idx < num_prototypes)).all()
    assert not (idx == assignment.unsqueeze(1)).any(), "own prototype drawn as a negative"
    for row in idx.tolist():
        assert len(set(row)) == len(row), "duplicate negative in a row"


def test_same_seed_same_indices_other_seed_other_indices():
    assignment = torch.arange(8) % 5
    draw = [
        sample_negative_prototypes(assignment, 40, 10, torch.Generator().manual_seed(seed))
        for seed in (7, 7, 8)
    ]
    assert torch.equal(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2])


def test_all_others_when_num_negatives_reaches_k_minus_one():
    assignment = torch.tensor([0, 3, 5, 3])
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    for r in (5, 6, 100):
        idx = sample_negative_prototypes(assignment, 6, r, generator)
        assert torch.equal(idx, all_other_prototypes(assignment, 6))
    assert torch.equal(generator.get_state(), state), "no sampling should happen"


def test_sampling_is_uniform_over_the_other_prototypes():
    # 4000 draws of 2 out of the 4 others of prototype 0: each other appears with p = 1/2.
    assignment = torch.zeros(4000, dtype=torch.long)
    idx = sample_negative_prototypes(assignment, 5, 2, torch.Generator().manual_seed(3))
    freq = torch.bincount(idx.flatten(), minlength=5).double() / 4000
    assert freq[0] == 0
    torch.testing.assert_close(
        freq[1:], torch.full((4,), 0.5, dtype=torch.float64), atol=0.04, rtol=0
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cpu_generator_gives_the_same_indices_for_gpu_tensors():
    assignment = torch.arange(8) % 5
    cpu = sample_negative_prototypes(assignment, 40, 10, torch.Generator().manual_seed(7))
    gpu = sample_negative_prototypes(assignment.cuda(), 40, 10, torch.Generator().manual_seed(7))
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu, gpu.cpu())


# ---------------------------------------------------------------- values against the reference


@pytest.mark.parametrize(
    ("batch", "dim", "num_prototypes", "num_negatives"),
    [(1, 3, 2, 1), (7, 4, 10, 3), (12, 8, 30, 29), (12, 8, 30, 5), (16, 5, 6, 1000)],
)
def test_matches_reference_with_the_same_indices(
    generator, batch, dim, num_prototypes, num_negatives
):
    q, prototypes, concentration, assignment = _problem(generator, batch, dim, num_prototypes)
    negatives = sample_negative_prototypes(
        assignment, num_prototypes, num_negatives, torch.Generator().manual_seed(11)
    )
    expected = proto_nce_ref(q, prototypes, concentration, assignment, negatives)

    logits = prototype_logits(
        q, prototypes, concentration, assignment, num_negatives, torch.Generator().manual_seed(11)
    )
    assert logits.shape == (batch, 1 + negatives.shape[1])
    torch.testing.assert_close(
        logits[:, 0], (q * prototypes[assignment]).sum(1) / concentration[assignment]
    )
    got = proto_nce(
        q, prototypes, concentration, assignment, num_negatives, torch.Generator().manual_seed(11)
    )
    assert got.item() == pytest.approx(expected, rel=1e-10)
    ce = F.cross_entropy(logits, torch.zeros(batch, dtype=torch.long))
    assert ce.item() == pytest.approx(expected, rel=1e-10)


def test_full_softmax_path_equals_explicit_logits(generator):
    # r >= K - 1 takes the logsumexp shortcut; it must equal CE over the reordered logits.
    q, prototypes, concentration, assignment = _problem(generator, 9, 6, 7, torch.float32)
    q.requires_grad_()
    shortcut = proto_nce(q, prototypes, concentration, assignment, num_negatives=16384)
    (grad_shortcut,) = torch.autograd.grad(shortcut, q)
    logits = prototype_logits(q, prototypes, concentration, assignment, num_negatives=6)
    explicit = F.cross_entropy(logits, torch.zeros(9, dtype=torch.long))
    (grad_explicit,) = torch.autograd.grad(explicit, q)
    torch.testing.assert_close(shortcut, explicit)
    torch.testing.assert_close(grad_shortcut, grad_explicit)


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("case", "num_prototypes", "num_negatives"),
    [
        ("one prototype for all", 5, 2),
        ("K smaller than r", 3, 16384),
        ("K = 1", 1, 16384),
        ("one sample per prototype", 6, 3),
        ("empty prototypes", 20, 4),
        ("identical prototypes", 4, 2),
        ("no negatives", 5, 0),
    ],
)
def test_edge_cases_are_finite(generator, case, num_prototypes, num_negatives):
    batch = 6
    q, prototypes, concentration, assignment = _problem(
        generator, batch, 4, num_prototypes, torch.float32
    )
    if case == "one prototype for all":
        assignment = torch.full((batch,), 2)
    elif case == "one sample per prototype":
        assignment = torch.arange(batch)
    elif case == "empty prototypes":
        assignment = torch.tensor([0, 0, 1, 1, 19, 19])
    elif case == "identical prototypes":
        prototypes = prototypes[:1].expand(num_prototypes, -1).clone()
    q.requires_grad_()
    loss = proto_nce(q, prototypes, concentration, assignment, num_negatives, generator)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(q.grad).all()
    if num_prototypes == 1 or num_negatives == 0:
        assert loss.item() == 0.0


def test_optimisation_lowers_loss(generator):
    _, prototypes, concentration, assignment = _problem(generator, 16, 6, 8, torch.float32)
    raw = torch.randn(16, 6, generator=generator, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)

    def loss_fn():
        q = F.normalize(raw, dim=1)
        return proto_nce(
            q, prototypes, concentration, assignment, 4, torch.Generator().manual_seed(0)
        )

    before = loss_fn().item()
    for _ in range(20):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert loss_fn().item() < 0.5 * before


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prototypes": torch.zeros(5, 3)}, "prototypes"),
        ({"prototypes": torch.zeros(5)}, "prototypes"),
        ({"concentration": torch.ones(4)}, "concentration"),
        ({"concentration": torch.ones(5, 1)}, "concentration"),
        ({"assignment": torch.zeros(3, dtype=torch.long)}, "assignment"),
        ({"assignment": torch.zeros(4)}, "assignment"),
        ({"assignment": torch.tensor([0, 1, 5, 2])}, "assignment"),
        ({"assignment": torch.tensor([0, -1, 2, 2])}, "assignment"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"q": torch.zeros(4, 4, 1)}, "q"),
        ({"concentration": torch.ones(5, device="meta")}, "concentration"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {
        "q": torch.zeros(4, 4),
        "prototypes": torch.zeros(5, 4),
        "concentration": torch.ones(5),
        "assignment": torch.tensor([0, 1, 4, 2]),
        "num_negatives": 2,
    }
    args.update(kwargs)
    for fn in (proto_nce, prototype_logits):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            fn(**args)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((torch.tensor([0, 5]), 5, 2), "assignment"),
        ((torch.tensor([[0, 1]]), 5, 2), "assignment"),
        ((torch.tensor([0, 1]), 0, 2), "num_prototypes"),
        ((torch.tensor([0, 1]), 5, -2), "num_negatives"),
    ],
)
def test_sampler_bad_arguments(args, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        sample_negative_prototypes(*args)
