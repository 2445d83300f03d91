"""Argument checks shared by the loss modules.

Every check raises a ``ValueError`` whose message starts with the argument's name. None of them
reads tensor values (no device sync) except :func:`check_assignment_range`, which needs one
min/max.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_positive(name: str, value: float) -> None:
    if not value > 0:  # also rejects NaN
        raise ValueError(f"{name} must be positive, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")


def check_embeddings(name: str, x: Tensor, *, min_rows: int = 1) -> None:
    """``x`` must be a floating (N, D) matrix with N >= ``min_rows`` and D >= 1."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least {min_rows} row(s) and 1 column, got shape {tuple(x.shape)}"
        )


def check_same_shape(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(x.shape)}"
        )


def check_assignment(name: str, assignment: Tensor, batch_size: int) -> None:
    """``assignment`` must be an integer vector of length ``batch_size`` (values not read)."""
    if not isinstance(assignment, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(assignment).__name__}")
    if assignment.dim() != 1 or assignment.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have shape ({batch_size},) (one cluster per sample), "
            f"got shape {tuple(assignment.shape)}"
        )
    if assignment.is_floating_point() or assignment.is_complex() or assignment.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got dtype {assignment.dtype}")


def check_assignment_range(
    names: Sequence[str], assignments: Sequence[Tensor], sizes: Sequence[int]
) -> None:
    """Every ``assignments[i]`` must lie in ``[0, sizes[i])``; one host sync for all of them."""
    if not assignments:
        return
    bad = torch.stack(
        [
            (a.min() < 0) | (a.max() >= size)
            if a.numel()
            else torch.zeros((), dtype=torch.bool, device=a.device)
            for a, size in zip(assignments, sizes)
        ]
    )
    if bool(bad.any()):  # the one sync
        for name, a, size, is_bad in zip(names, assignments, sizes, bad.tolist()):
            if is_bad:
                lo, hi = int(a.min()), int(a.max())
                raise ValueError(f"{name} must lie in [0, {size}), got values in [{lo}, {hi}]")


def check_same_device(**tensors: Tensor | None) -> None:
    """All given tensors (``None`` skipped) must live on one device."""
    items = [(name, t) for name, t in tensors.items() if t is not None]
    if not items:
        return
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if t.device != ref.device:
            raise ValueError(
                f"{name} is on {t.device} but {ref_name} is on {ref.device}; "
                "all tensors must be on one device"
            )
