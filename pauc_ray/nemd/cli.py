"""Command line: the NEMD report (Eq. 3) of embeddings and assignments stored as ``.npy`` files.

    python -m pauc_ray.nemd --embeddings E.npy --assignments A.npy [--exact] [--matrix]

Prints the report as JSON on stdout; logs go to stderr. A bad input (missing or unreadable
file, wrong shapes, NaN, a single prototype, a bad setting) prints one line ``error: ...`` on
stderr and exits with code 2, like argparse.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd.validation import check_inputs, check_nemd_config

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


class InputError(ValueError):
    """A user input the report cannot use; the message is shown as ``error: ...``."""


def _optional_count(text: str) -> int | None:
    """``"none"`` (no limit) or an integer, for --max-points and --max-pairs."""
    if text.strip().lower() in {"none", "all"}:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every default comes from :class:`NEMDConfig`."""
    defaults = NEMDConfig()
    parser = argparse.ArgumentParser(
        prog="python -m pauc_ray.nemd",
        description="NEMD (Eq. 3) between the prototypes of one clustering, as JSON on stdout.",
    )
    parser.add_argument("--embeddings", required=True, help="(N, D) float array, .npy")
    parser.add_argument("--assignments", required=True, help="(N,) integer prototype ids, .npy")
    parser.add_argument(
        "--epsilon",
        type=float,
        default=defaults.epsilon,
        help="Sinkhorn regularisation, in units of the ground cost (default: %(default)s)",
    )
    parser.add_argument(
        "--max-points",
        type=_optional_count,
        default=defaults.max_points,
        help="points kept per prototype, 'none' for all (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pairs",
        type=_optional_count,
        default=defaults.max_pairs,
        help="prototype pairs evaluated, 'none' for all (default: %(default)s)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=defaults.max_iter,
        help="Sinkhorn iterations at most (default: %(default)s)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=defaults.tol,
        help="stop at this L1 marginal error (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed of the subsamples (default: %(default)s)",
    )
    parser.add_argument("--exact", action="store_true", help="exact EMD with POT, on CPU")
    parser.add_argument(
        "--matrix", action="store_true", help="include the K x K matrix in the JSON"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="where Sinkhorn runs (default: cuda when available)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


def _load_array(path: str, flag: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{flag}: no such file: {path}")
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{flag}: {path} is not a readable .npy file ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise InputError(f"{flag}: {path} holds several arrays (.npz); expected one .npy array")
    return array


def _run(args: argparse.Namespace) -> dict:
    config = NEMDConfig(
        epsilon=args.epsilon,
        max_points=args.max_points,
        max_pairs=args.max_pairs,
        max_iter=args.max_iter,
        tol=args.tol,
        seed=args.seed,
    )
    check_nemd_config(config)
    embeddings = _load_array(args.embeddings, "--embeddings")
    assignments = _load_array(args.assignments, "--assignments")
    embeddings, assignments = check_inputs(embeddings, assignments)
    # Imported only now: torch and POT take seconds to load, and a bad file needs neither.
    from pauc_ray.nemd.report import nemd_report

    report = nemd_report(
        embeddings,
        assignments,
        config,
        exact=args.exact,
        return_matrix=args.matrix,
        device=args.device,
    )
    return report.to_dict()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0, or 2 on a bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = _run(args)
    except ValueError as exc:  # InputError and the report's own checks
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, allow_nan=False))
    return 0
