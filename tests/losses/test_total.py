"""The total of Eq. 7: reference value, method presets, skipped terms, edge cases, behaviour,
argument checks, and the global-batch prototypes of a 2-process gloo run."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch.nn.functional as F
from gloo_processes import free_port, gloo_process
from loss_references import (
    batch_prototypes_ref,
    info_nce_ref,
    p_align_ref,
    p_corr_ref,
    p_uniform_ref,
    proto_nce_ref,
    unit_rows,
)

import pauc_ray.losses.total as total_module
from pauc_ray.config import LossConfig
from pauc_ray.losses import (
    TERM_NAMES,
    PrototypeSet,
    info_nce,
    pauc_loss,
    proto_nce,
    sample_negative_prototypes,
)

CONFIG = LossConfig(temperature=0.2, num_negative_prototypes=4, alpha=0.7, beta=0.3, gamma=0.2)
# r >= K - 1 for every clustering of the 2-process test: nothing sampled, same negatives.
DIST_CONFIG = dataclasses.replace(CONFIG, num_negative_prototypes=16384)


def _problem(generator, batch=12, dim=6, sizes=(3, 8, 20), queue_size=16, dtype=torch.float64):
    q = unit_rows(generator, batch, dim, dtype)
    k = F.normalize(q + 0.3 * unit_rows(generator, batch, dim, dtype), dim=1)
    queue = unit_rows(generator, queue_size, dim, dtype)
    sets = [
        PrototypeSet(
            prototypes=unit_rows(generator, size, dim, dtype),
            concentration=0.1 + 0.2 * torch.rand(size, generator=generator, dtype=dtype),
            assignment=torch.randint(0, size, (batch,), generator=generator),
        )
        for size in sizes
    ]
    return q, k, queue, sets


def _reference(q, k, queue, sets, config, seed):
    """Eq. 7 with Python loops, drawing the negatives with the same generator in the same order."""
    generator = torch.Generator().manual_seed(seed)
    terms = dict.fromkeys(TERM_NAMES, 0.0)
    terms["info_nce"] = info_nce_ref(q, k, queue, config.temperature)
    proto_total = 0.0
    for pset in sets:
        num = pset.prototypes.shape[0]
        negatives = sample_negative_prototypes(
            pset.assignment, num, config.num_negative_prototypes, generator
        )
        _, cq, ck, _ = batch_prototypes_ref(q, k, pset.assignment)
        values = {
            "proto_nce": proto_nce_ref(
                q, pset.prototypes, pset.concentration, pset.assignment, negatives
            ),
            "p_align": p_align_ref(cq, ck, config.align_exponent),
            "p_uniform": p_uniform_ref(cq, config.uniform_t),
            "p_corr": p_corr_ref(cq, config.corr_temperature),
        }
        weights = {
            "proto_nce": 1.0,
            "p_align": config.alpha,
            "p_uniform": config.beta,
            "p_corr": config.gamma,
        }
        for name, value in values.items():
            terms[name] += value / len(sets)
            proto_total += weights[name] * value / len(sets)
    return terms["info_nce"] + proto_total, terms


@pytest.mark.parametrize(
    ("batch", "dim", "sizes"), [(8, 4, (5,)), (12, 6, (3, 8, 20)), (16, 8, (2, 16))]
)
def test_pauc_matches_reference(generator, batch, dim, sizes):
    q, k, queue, sets = _problem(generator, batch, dim, sizes)
    expected_total, expected_terms = _reference(q, k, queue, sets, CONFIG, seed=5)
    out = pauc_loss(q, k, queue, sets, config=CONFIG, generator=torch.Generator().manual_seed(5))
    assert out.total.item() == pytest.approx(expected_total, rel=1e-9)
    assert out.terms.keys() == set(TERM_NAMES)
    for name in TERM_NAMES:
        assert out.terms[name] == pytest.approx(expected_terms[name], rel=1e-9, abs=1e-12), name
    assert 0.0 <= out.instance_accuracy <= 100.0
    assert 0.0 <= out.prototype_accuracy <= 100.0


def test_pcl_and_moco_presets(generator):
    q, k, queue, sets = _problem(generator)
    info = info_nce(q, k, queue, CONFIG.temperature).item()
    protos = [
        proto_nce(q, s.prototypes, s.concentration, s.assignment, CONFIG.num_negative_prototypes, g)
        for g in [torch.Generator().manual_seed(1)]
        for s in sets
    ]
    pcl = pauc_loss(
        q, k, queue, sets, method="pcl", config=CONFIG, generator=torch.Generator().manual_seed(1)
    )
    assert pcl.total.item() == pytest.approx(info + sum(p.item() for p in protos) / len(sets))
    assert pcl.terms["p_align"] == pcl.terms["p_uniform"] == pcl.terms["p_corr"] == 0.0
    assert pcl.prototype_accuracy is not None

    moco = pauc_loss(q, k, queue, [], method="moco", config=CONFIG)
    assert moco.total.item() == pytest.approx(info)
    assert moco.prototype_accuracy is None
    assert all(moco.terms[name] == 0.0 for name in TERM_NAMES[1:])


def test_warmup_is_info_nce_alone(generator):
    q, k, queue, sets = _problem(generator)
    out = pauc_loss(q, k, queue, sets, config=CONFIG, warmup=True)
    assert out.total.item() == pytest.approx(info_nce(q, k, queue, CONFIG.temperature).item())
    assert out.prototype_accuracy is None


def _forbid(monkeypatch, *names):
    def boom(*args, **kwargs):
        raise AssertionError("a switched-off term was computed")

    for name in names:
        monkeypatch.setattr(total_module, name, boom)


def test_pcl_computes_no_prototype_terms(generator, monkeypatch):
    _forbid(monkeypatch, "_batch_prototypes", "_p_align", "_p_uniform", "_p_corr")
    q, k, queue, sets = _problem(generator)
    pauc_loss(q, k, queue, sets, method="pcl", config=CONFIG)
    with pytest.raises(AssertionError, match="switched-off"):
        pauc_loss(q, k, queue, sets, method="pauc", config=CONFIG)


@pytest.mark.parametrize(
    ("weight", "function"), [("alpha", "_p_align"), ("beta", "_p_uniform"), ("gamma", "_p_corr")]
)
def test_zero_weight_term_is_skipped(generator, monkeypatch, weight, function):
    _forbid(monkeypatch, function)
    q, k, queue, sets = _problem(generator)
    out = pauc_loss(q, k, queue, sets, config=dataclasses.replace(CONFIG, **{weight: 0.0}))
    assert torch.isfinite(out.total)


def test_accuracies_on_an_easy_problem():
    # Each query equals its key and its own prototype; negatives are orthogonal.
    eye = torch.eye(4)
    sets = [PrototypeSet(eye, torch.full((4,), 0.2), torch.arange(4))]
    out = pauc_loss(eye, eye, -eye, sets, config=CONFIG)
    assert out.instance_accuracy == 100.0
    assert out.prototype_accuracy == 100.0
    out = pauc_loss(
        eye,
        eye,
        eye.roll(1, 0) * 2,
        [PrototypeSet(eye, torch.full((4,), 0.2), torch.arange(4).roll(1))],
        config=CONFIG,
    )
    assert out.instance_accuracy == 0.0
    assert out.prototype_accuracy == 0.0


@pytest.mark.parametrize(
    "case",
    [
        "one prototype for all",
        "K smaller than r",
        "K = 1",
        "one sample per prototype",
        "empty prototypes",
        "identical prototypes",
    ],
)
def test_edge_cases_are_finite(generator, case):
    batch, dim = 6, 4
    q, k, queue, _ = _problem(generator, batch, dim, (), dtype=torch.float32)
    size, assignment = 10, torch.randint(0, 10, (batch,), generator=generator)
    prototypes = unit_rows(generator, size, dim, torch.float32)
    if case == "one prototype for all":
        assignment = torch.full((batch,), 3)
    elif case == "K smaller than r":
        size, assignment, prototypes = 3, assignment % 3, prototypes[:3]
    elif case == "K = 1":
        size, assignment, prototypes = 1, torch.zeros(batch, dtype=torch.long), prototypes[:1]
    elif case == "one sample per prototype":
        assignment = torch.randperm(10, generator=generator)[:batch]
    elif case == "empty prototypes":
        assignment = torch.tensor([0, 0, 0, 9, 9, 9])
    elif case == "identical prototypes":
        prototypes = prototypes[:1].expand(size, -1).clone()
        q = q[:1].expand(batch, -1).clone()  # and identical samples, so batch prototypes coincide
    q.requires_grad_()
    sets = [PrototypeSet(prototypes, torch.full((size,), 0.2), assignment)]
    out = pauc_loss(
        q, k, queue, sets, config=dataclasses.replace(CONFIG, num_negative_prototypes=16384)
    )
    out.total.backward()
    assert torch.isfinite(out.total)
    assert torch.isfinite(q.grad).all()
    assert all(torch.isfinite(torch.tensor(v)) for v in out.terms.values())


def test_optimisation_lowers_total(generator):
    _, k, queue, sets = _problem(generator, dtype=torch.float32)
    raw = torch.randn(12, 6, generator=generator, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)

    def loss():
        return pauc_loss(
            F.normalize(raw, dim=1),
            k,
            queue,
            sets,
            config=CONFIG,
            generator=torch.Generator().manual_seed(0),
        )

    before = loss()
    for _ in range(25):
        opt.zero_grad()
        loss().total.backward()
        opt.step()
    after = loss()
    assert after.total.item() < before.total.item() - 0.5
    for name in ("info_nce", "proto_nce"):
        assert after.terms[name] < before.terms[name], name


def test_gather_is_a_no_op_in_one_process(generator):
    q, k, queue, sets = _problem(generator)
    a, b = (
        pauc_loss(
            q,
            k,
            queue,
            sets,
            config=CONFIG,
            generator=torch.Generator().manual_seed(0),
            gather_distributed=gather,
        )
        for gather in (True, False)
    )
    assert a.total.item() == b.total.item()
    assert a.terms == b.terms


def _bad_cases(sets):
    good = sets[0]
    return [
        ({"method": "simclr"}, "method"),
        ({"prototype_sets": []}, "prototype_sets"),
        (
            {"prototype_sets": [(good.prototypes, good.concentration, good.assignment)]},
            r"prototype_sets\[0\]",
        ),
        (
            {"prototype_sets": [good, dataclasses.replace(good, assignment=good.assignment + 100)]},
            r"prototype_sets\[1\]\.assignment",
        ),
        (
            {"prototype_sets": [dataclasses.replace(good, prototypes=good.prototypes[:, :2])]},
            r"prototype_sets\[0\]\.prototypes",
        ),
        (
            {"prototype_sets": [dataclasses.replace(good, concentration=good.concentration[:1])]},
            r"prototype_sets\[0\]\.concentration",
        ),
        (
            {"prototype_sets": [dataclasses.replace(good, assignment=good.assignment[:3])]},
            r"prototype_sets\[0\]\.assignment",
        ),
        ({"k": torch.zeros(3, 6, dtype=torch.float64)}, "k"),
        ({"queue": torch.zeros(5, 2, dtype=torch.float64)}, "queue"),
    ]


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"gamma": -0.1}, "gamma"),
        ({"temperature": 0.0}, "temperature"),
        ({"uniform_t": -1.0}, "uniform_t"),
        ({"corr_temperature": 0.0}, "corr_temperature"),
        ({"align_exponent": 0.0}, "align_exponent"),
        ({"num_negative_prototypes": -1}, "num_negative_prototypes"),
    ],
)
def test_bad_config_is_refused_when_built(change, name):
    with pytest.raises(ValueError, match=rf"loss\.{name}\b"):
        dataclasses.replace(CONFIG, **change)


def test_bad_arguments(generator):
    q, k, queue, sets = _problem(generator)
    for kwargs, name in _bad_cases(sets):
        args = {"q": q, "k": k, "queue": queue, "prototype_sets": sets, "config": CONFIG}
        args.update(kwargs)
        with pytest.raises(ValueError, match=rf"(^|\W){name}(\W|$)"):
            pauc_loss(**args)


# ---------------------------------------------------------------- two processes (gloo)


def _distributed_worker(rank: int, world_size: int, tmp_dir: str, port: int) -> None:
    with gloo_process(rank, world_size, port):
        q, k, queue, sets = torch.load(f"{tmp_dir}/inputs.pt", weights_only=False)
        rows = slice(rank * q.shape[0] // world_size, (rank + 1) * q.shape[0] // world_size)
        q_local = q[rows].clone().requires_grad_()
        local_sets = [dataclasses.replace(s, assignment=s.assignment[rows]) for s in sets]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = pauc_loss(
                q_local, k[rows], queue, local_sets, config=DIST_CONFIG, gather_distributed=True
            )
            out.total.backward()
        torch.save(
            {
                "terms": out.terms,
                "grad": q_local.grad,
                "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
            },
            f"{tmp_dir}/rank{rank}.pt",
        )


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_gathered_prototypes_equal_the_single_process_full_batch(generator, tmp_path):
    q, k, queue, sets = _problem(generator, batch=8, dim=4, sizes=(3, 5), dtype=torch.float32)
    q_full = q.clone().requires_grad_()
    full = pauc_loss(q_full, k, queue, sets, config=DIST_CONFIG)
    full.total.backward()
    torch.save((q, k, queue, sets), tmp_path / "inputs.pt")

    torch.multiprocessing.spawn(
        _distributed_worker, args=(2, str(tmp_path), free_port()), nprocs=2, join=True
    )

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in ranks:  # the gather uses torch's current collective, not a deprecated one
        assert not [w for w in result["warnings"] if w.startswith("FutureWarning")]
    for name in ("p_align", "p_uniform", "p_corr"):
        for result in ranks:
            assert result["terms"][name] == pytest.approx(full.terms[name], rel=1e-5, abs=1e-6), (
                name
            )
    for name in ("info_nce", "proto_nce"):  # per-sample terms stay local; equal halves average
        mean = sum(r["terms"][name] for r in ranks) / 2
        assert mean == pytest.approx(full.terms[name], rel=1e-5), name
    # Each process's gradient is world_size times its rows of the full-batch gradient, so
    # DDP's average over processes gives the full-batch gradient of the parameters.
    grads = torch.cat([r["grad"] for r in ranks]) / 2
    assert torch.isfinite(grads).all()
    torch.testing.assert_close(grads, q_full.grad, rtol=1e-4, atol=1e-6)
