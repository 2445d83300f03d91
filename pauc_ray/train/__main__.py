"""``python -m pauc_ray.train``: PAUC / PCL / MoCo pretraining on Ray Train.

With no arguments: PAUC on scikit-learn's digits, 2 workers, on a local Ray (started if none
runs). On a cluster: ``ray job submit --working-dir . -- python -m pauc_ray.train ...``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from pauc_ray.config_io import from_dict, merge
from pauc_ray.data import DatasetError
from pauc_ray.train.config import TrainConfig, build_parser, config_from_args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_console_logging(args.verbose)
    try:
        if args.resume:
            from pauc_ray.train.run_files import RunFiles

            saved = RunFiles(args.resume).config
            if not saved.is_file():
                raise ValueError(f"--resume {args.resume}: no config.json there (not a run folder)")
            base = json.loads(saved.read_text())
            flags = config_from_args(args, recipe=False).to_dict()
            defaults = TrainConfig().to_dict()
            changed = {k: v for k, v in flags.items() if v != defaults.get(k)}
            config = from_dict(TrainConfig, merge(base, changed))
        else:
            config = config_from_args(args)
    except (ValueError, DatasetError) as exc:
        parser.exit(2, f"error: {exc}\n")

    from pauc_ray.train.driver import init_ray, run_training

    init_ray(verbose=args.verbose)
    try:
        summary = run_training(config, resume=args.resume, console=True, verbose=args.verbose)
    except (ValueError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary["error"] is not None:
        print(f"error: the run failed: {summary['error']}", file=sys.stderr)
    for line in final_report(summary):
        print(line)
    run = summary["run_dir"]
    print(f"run folder: {run} (summary.json, history.json, curves.png, tensorboard/, export/)")
    return 0 if summary["error"] is None else 1


def configure_console_logging(verbose: bool) -> None:
    """The console's logging: warnings and errors from everything; this package's INFO lines
    (dataset preparation, validation, resume) too; everything at INFO with ``verbose``."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pauc_ray").setLevel(logging.INFO)
    if not verbose:
        for chatty in ("faiss", "pauc_ray.data.validation"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def final_report(summary: dict) -> list[str]:
    """The run's kNN top-1 beside its two baselines on the same split, and what it means."""
    trained = summary.get("knn_top1")
    if trained is None:
        return ["kNN: not evaluated (the dataset has no labelled held-out split)"]
    raw, initial = summary.get("raw_knn_top1"), summary.get("random_init_knn_top1")
    lines = [
        f"kNN top-1, held-out split ({summary.get('representation')} features of "
        f"{summary.get('backbone')}):",
        f"  trained      {trained:6.2f} %",
        f"  raw input    {raw:6.2f} %" if raw is not None else "  raw input    -",
        f"  random init  {initial:6.2f} %" if initial is not None else "  random init  -",
    ]
    if raw is not None and initial is not None:
        beaten = trained > max(raw, initial)
        lines.append(
            "  pretraining beat both baselines"
            if beaten
            else "  pretraining did NOT beat both baselines: the encoder learned nothing a kNN "
            "can use beyond its input"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
