"""Checks of the NEMD report's inputs and settings, in numpy only.

Kept free of torch and POT so that the CLI rejects a bad file in a fraction of a second,
before the heavy imports. Every error is a ValueError whose one-line message names the input.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from pauc_ray.config import NEMDConfig

__all__ = ["check_inputs", "check_nemd_config"]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_nemd_config(config: NEMDConfig) -> None:
    """Raise ValueError naming the first setting of ``config`` that is out of range."""
    if not _is_positive_number(config.epsilon):
        raise ValueError(f"epsilon must be a finite number > 0, got {config.epsilon!r}")
    for name in ("max_points", "max_pairs"):
        value = getattr(config, name)
        if value is not None and not (_is_int(value) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
    if not (_is_int(config.max_iter) and config.max_iter >= 1):
        raise ValueError(f"max_iter must be an integer >= 1, got {config.max_iter!r}")
    if not _is_positive_number(config.tol):
        raise ValueError(f"tol must be a finite number > 0, got {config.tol!r}")
    if not (_is_int(config.seed) and config.seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {config.seed!r}")


def _as_numpy(array: object, name: str) -> np.ndarray:
    # A tensor can only exist if torch is already imported; never import it here.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    out = np.asarray(array)
    if out.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {out.dtype}")
    return out


def _first_rows(flags: np.ndarray) -> str:
    rows = np.flatnonzero(flags)
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return f"{len(rows)} of {len(flags)} rows (first: {shown})"


def check_inputs(embeddings: object, assignments: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate the report's inputs.

    Args:
        embeddings: ``(N, D)`` real array (numpy, or a torch tensor on any device).
        assignments: ``(N,)`` integer prototype ids (floats holding integers are accepted).

    Returns:
        ``embeddings`` as a numpy array (dtype kept) and ``assignments`` as int64.

    Raises:
        ValueError: wrong rank, length mismatch, NaN/inf or zero-norm rows, non-integer ids,
            or fewer than 2 distinct prototypes.
    """
    emb = _as_numpy(embeddings, "embeddings")
    assign = _as_numpy(assignments, "assignments")
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {emb.shape}")
    if assign.ndim != 1:
        raise ValueError(f"assignments must be 1-D (N,), got shape {assign.shape}")
    if len(assign) != len(emb):
        raise ValueError(
            f"assignments has {len(assign)} entries but embeddings has {len(emb)} rows"
        )
    if emb.shape[1] < 1:
        raise ValueError(f"embeddings must have at least one column, got shape {emb.shape}")
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        raise ValueError(f"embeddings contain NaN or inf in {_first_rows(bad)}")
    zero = ~(emb != 0).any(axis=1)
    if zero.any():
        raise ValueError(
            f"embeddings have zero norm in {_first_rows(zero)}; they cannot be L2-normalised"
        )
    if assign.dtype.kind == "f" and not (np.isfinite(assign) & (assign == np.round(assign))).all():
        raise ValueError("assignments must hold integer prototype ids, got non-integer values")
    assign = assign.astype(np.int64)
    num_ids = len(np.unique(assign))
    if num_ids < 2:
        raise ValueError(
            f"assignments hold {num_ids} distinct prototype id(s); NEMD needs at least 2"
        )
    return emb, assign
