"""Linear probe on frozen features: multinomial logistic regression, top-1/top-5 (percent).

The standard evaluation of self-supervised encoders (the paper's Tables 2 and 3 train a linear
classifier on frozen features). Here the classifier is fitted full-batch with L-BFGS, starting
from zero weights, on features whitened with the train split's mean and covariance (PCA
whitening: a linear, invertible map, so the set of linear classifiers is unchanged; it makes
the problem well conditioned, and L-BFGS then needs ~100 instead of ~300 iterations on
contrastive embeddings, whose dimensions are strongly correlated). No mini-batch order and no
random initialisation: the result depends only on the data and ``seed``. The seed draws the
validation share of the train split (at most ``selection_max_samples`` rows are fitted there)
that picks the L2 strength from ``weight_decays``; the final classifier is fitted on the whole
train split with that strength and scored once on the held-out split.

Each L-BFGS step is a small problem (60,000 x 128 x 10 is ~0.1 GFLOP), so it runs on one
thread by default: on a busy 2-core machine two threads made it ~5x slower (measured), as
OpenMP threads wait on descheduled ones.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pauc_ray.evaluation.splits import labelled_split


@dataclass(frozen=True)
class LinearProbeConfig:
    """Settings of :func:`linear_probe`.

    Attributes:
        weight_decays: L2 strengths tried (``lambda / 2 * ||W||^2`` added to the mean
            cross-entropy, in whitened coordinates); one value skips the validation split.
        validation_fraction: share of the train split held out (seeded) to choose the strength.
        selection_max_samples: rows of the remaining train split fitted per strength at most
            (seeded); None: all.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the validation split and the selection subsample.
        num_threads: torch threads while fitting (restored afterwards); None: unchanged.
    """

    weight_decays: tuple[float, ...] = (1e-6, 1e-4, 1e-2)
    validation_fraction: float = 0.1
    selection_max_samples: int | None = 10_000
    max_iter: int = 100
    seed: int = 0
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ValueError(
                f"weight_decays must be a non-empty list of values >= 0, got {self.weight_decays}"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        for name in ("selection_max_samples", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")


@dataclass(frozen=True)
class LinearProbeResult:
    """Held-out accuracy of the probe (percent) and how it was fitted."""

    top1: float
    top5: float
    num_classes: int
    weight_decay: float  # the strength chosen on the validation share
    validation_top1: dict[str, float]  # strength (as text) -> validation top-1, percent
    train_top1: float  # of the final fit on the whole train split
    seed: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def whiten(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """PCA-whitens ``train`` (N, D) and ``others`` (M, D) with ``train``'s mean and covariance.

    Eigenvalues are floored at ``1e-6`` of the largest, so (near-)constant directions are not
    blown up. Returns float32 tensors; the whitened train features have ~identity covariance.
    """
    x = train.double()
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / max(len(x) - 1, 1)
    values, vectors = torch.linalg.eigh(cov)
    floor = max(float(values.max()), 1e-12) * 1e-6
    project = vectors / values.clamp_min(floor).sqrt()
    return [((t.double() - mean) @ project).float() for t in (train, *others)]


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch L-BFGS on mean cross-entropy + ``weight_decay / 2 * ||W||^2``.

    Args:
        x: (N, D) features (whitened or standardised).
        y: (N,) int64 labels in ``0..num_classes-1``.
        num_classes: C.
        weight_decay: L2 strength on the weights (not the bias).
        max_iter: L-BFGS iterations.

    Returns:
        ``(W, b)``: (D, C) weights and (C,) bias.
    """
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
    top1 = (ranked[:, 0] == y).double().mean().item()
    top5 = (ranked == y[:, None]).any(dim=1).double().mean().item()
    return 100.0 * top1, 100.0 * top5


def _choose_weight_decay(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, config: LinearProbeConfig
) -> tuple[float, dict[str, float]]:
    """The strength with the best top-1 on a seeded validation share (ties: the smaller)."""
    order = np.random.default_rng(config.seed).permutation(len(x))
    n_val = max(1, round(config.validation_fraction * len(x)))
    val_idx = torch.as_tensor(order[:n_val])
    fit_idx = torch.as_tensor(order[n_val:][: config.selection_max_samples])
    xfit, xval = whiten(x[fit_idx], x[val_idx])
    scores: dict[str, float] = {}
    best, chosen = -1.0, config.weight_decays[0]
    for decay in sorted(config.weight_decays):
        w, b = fit_logistic_regression(xfit, y[fit_idx], num_classes, decay, config.max_iter)
        top1, _ = _accuracy(xval @ w + b, y[val_idx])
        scores[repr(float(decay))] = top1
        if top1 > best:
            best, chosen = top1, decay
    return chosen, scores


def linear_probe(
    train_features: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_features: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    config: LinearProbeConfig = LinearProbeConfig(),
) -> LinearProbeResult:
    """Trains a linear classifier on frozen train features, scores it on the test features.

    Args:
        train_features: (N, D) features the classifier is fitted on.
        train_labels: (N,) integer labels >= 0.
        test_features: (M, D) held-out features.
        test_labels: (M,) their labels.
        config: L2 strengths, validation share, iterations, seed, threads.

    Returns:
        A :class:`LinearProbeResult` (percent).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(200, 4)), np.repeat([0, 1], 100)
        >>> x[:, 0] += 5 * y
        >>> linear_probe(x[::2], y[::2], x[1::2], y[1::2]).top1
        100.0
    """
    start = time.perf_counter()
    xtr, ytr, xte, yte = labelled_split(
        train_features, train_labels, test_features, test_labels, dtype=torch.float64
    )
    if xtr.shape[0] < 2 or xte.shape[0] == 0:
        raise ValueError("linear probe needs at least 2 train rows and 1 test row")
    if (ytr < 0).any() or (yte < 0).any():
        raise ValueError("labels must be non-negative integers (the split has unlabelled rows)")
    if not (torch.isfinite(xtr).all() and torch.isfinite(xte).all()):
        raise ValueError("features must be finite")
    num_classes = int(max(ytr.max(), yte.max())) + 1

    previous_threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        weight_decay, validation = config.weight_decays[0], {}
        if len(config.weight_decays) > 1:
            weight_decay, validation = _choose_weight_decay(xtr, ytr, num_classes, config)
        xs_tr, xs_te = whiten(xtr, xte)
        w, b = fit_logistic_regression(xs_tr, ytr, num_classes, weight_decay, config.max_iter)
        train_top1, _ = _accuracy(xs_tr @ w + b, ytr)
        top1, top5 = _accuracy(xs_te @ w + b, yte)
    finally:
        torch.set_num_threads(previous_threads)
    return LinearProbeResult(
        top1=top1,
        top5=top5,
        num_classes=num_classes,
        weight_decay=float(weight_decay),
        validation_top1=validation,
        train_top1=train_top1,
        seed=config.seed,
        seconds=round(time.perf_counter() - start, 3),
    )
