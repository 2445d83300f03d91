"""Slow, obvious float64 references of every loss term: Python loops over samples and pairs.

Each takes tensors, reads them as nested Python floats and returns a float, so nothing here
shares code (or bugs) with the vectorised implementation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _rows(x: Tensor) -> list[list[float]]:
    return x.detach().double().cpu().tolist()


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _cross_entropy_first(logits: list[float]) -> float:
    """-log softmax(logits)[0]."""
    top = max(logits)
    return -(logits[0] - top - math.log(sum(math.exp(v - top) for v in logits)))


def _normalize(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / max(norm, 1e-12) for x in v]


def info_nce_ref(q: Tensor, k: Tensor, queue: Tensor | None, temperature: float) -> float:
    qs, ks = _rows(q), _rows(k)
    negatives = _rows(queue) if queue is not None else []
    losses = []
    for qi, ki in zip(qs, ks):
        logits = [_dot(qi, ki) / temperature] + [_dot(qi, n) / temperature for n in negatives]
        losses.append(_cross_entropy_first(logits))
    return sum(losses) / len(losses)


def proto_nce_ref(
    q: Tensor, prototypes: Tensor, concentration: Tensor, assignment: Tensor, negatives: Tensor
) -> float:
    """``negatives``: (B, r') prototype indices of each sample."""
    qs, cs = _rows(q), _rows(prototypes)
    phis = concentration.double().tolist()
    losses = []
    for qi, own, negs in zip(qs, assignment.tolist(), negatives.tolist()):
        logits = [_dot(qi, cs[own]) / phis[own]] + [_dot(qi, cs[j]) / phis[j] for j in negs]
        losses.append(_cross_entropy_first(logits))
    return sum(losses) / len(losses)


def all_other_prototypes(assignment: Tensor, num_prototypes: int) -> Tensor:
    return torch.tensor(
        [[j for j in range(num_prototypes) if j != a] for a in assignment.tolist()],
        dtype=torch.long,
    ).reshape(len(assignment), num_prototypes - 1)


def batch_prototypes_ref(
    q: Tensor, k: Tensor, assignment: Tensor
) -> tuple[list[int], list[list[float]], list[list[float]], list[int]]:
    """(cluster ids ascending, cq rows, ck rows, counts)."""
    qs, ks, labels = _rows(q), _rows(k), assignment.tolist()
    ids = sorted(set(labels))
    cq, ck, counts = [], [], []
    for c in ids:
        members = [i for i, label in enumerate(labels) if label == c]
        dim = len(qs[0])
        cq.append(_normalize([sum(qs[i][d] for i in members) / len(members) for d in range(dim)]))
        ck.append(_normalize([sum(ks[i][d] for i in members) / len(members) for d in range(dim)]))
        counts.append(len(members))
    return ids, cq, ck, counts


def p_align_ref(cq: Tensor | list, ck: Tensor | list, exponent: float) -> float:
    cq = _rows(cq) if isinstance(cq, Tensor) else cq
    ck = _rows(ck) if isinstance(ck, Tensor) else ck
    values = [
        math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y))) ** exponent for x, y in zip(cq, ck)
    ]
    return sum(values) / len(values)


def p_uniform_ref(protos: Tensor | list, t: float, log: bool = True) -> float:
    cs = _rows(protos) if isinstance(protos, Tensor) else protos
    if len(cs) < 2:
        return 0.0
    values = [
        math.exp(-t * sum((a - b) ** 2 for a, b in zip(cs[p], cs[r])))
        for p in range(len(cs))
        for r in range(len(cs))
        if p != r
    ]
    mean = sum(values) / len(values)
    return math.log(mean) if log else mean


def _softmax(v: list[float], temperature: float) -> list[float]:
    top = max(v)
    e = [math.exp((x - top) / temperature) for x in v]
    total = sum(e)
    return [x / total for x in e]


def p_corr_ref(protos: Tensor | list, temperature: float) -> float:
    cs = _rows(protos) if isinstance(protos, Tensor) else protos
    if len(cs) < 2:
        return 0.0
    pis = [_softmax(c, temperature) for c in cs]
    kls = [
        sum(a * math.log(a / b) for a, b in zip(pis[p], pis[r]))
        for p in range(len(cs))
        for r in range(len(cs))
        if p != r
    ]
    return -sum(kls) / len(kls)


def unit_rows(generator: torch.Generator, rows: int, dim: int, dtype=torch.float64) -> Tensor:
    return torch.nn.functional.normalize(
        torch.randn(rows, dim, generator=generator, dtype=dtype), dim=1
    )
