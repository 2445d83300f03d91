"""``python -m pauc_ray.evaluate RUN_OR_EXPORT --out DIR``: evaluate a finished model offline.

Loads the export (a run folder holding ``export/``, or the export folder itself) through
:func:`pauc_ray.export.load_exported_model`, prepares ``--dataset`` (default: the one the model
was trained on) in ``--data-dir`` if needed, and writes ``DIR/eval.json`` plus the PNGs of
:func:`pauc_ray.evaluation.report.evaluate_model`: kNN (k = 20 and 200) and linear-probe
top-1/top-5, the NEMD report per clustering, alignment and uniformity, a t-SNE map, NEMD heat
maps and, for 2-D embeddings, the unit-circle plot. A bad input exits with code 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pauc_ray.data import DatasetError
from pauc_ray.export import ExportedModel, ExportError, load_exported_model


def load_model(path: str | Path, device: str = "cpu") -> ExportedModel:
    """The export at ``path`` (a local folder or a URI such as ``s3://bucket/runs/NAME``); the
    error says what the folder is when it holds none."""
    from pauc_ray.checkpoint import find_latest_checkpoint
    from pauc_ray.storage import resolve

    where = resolve(path)
    if not where.exists():
        raise ExportError(f"{where}: no such run or export folder")
    try:
        return load_exported_model(path if where.is_local else where.uri, device)
    except ExportError:
        if where.is_dir() and find_latest_checkpoint(where) is not None:
            raise ExportError(
                f"{where}: run folder with checkpoints but no export/ (the run did not finish); "
                f"finish it with `python -m pauc_ray.train --resume {where}`"
            ) from None
        if where.is_dir() and (where / "config.json").is_file():
            raise ExportError(
                f"{where}: run folder with neither a complete checkpoint nor export/ "
                "(the run never finished an epoch)"
            ) from None
        raise


def resolve_eval_dataset(model: ExportedModel, name: str | None, data_dir: str) -> tuple[str, str]:
    """``(name, prepared folder)``; preparing uses the run's seed, so a dataset split here
    (digits, blobs) gets the same held-out rows the run was trained without."""
    from pauc_ray.data import resolve_dataset

    name = name or model.meta.get("dataset")
    if not name:
        raise DatasetError(f"{model.path}: model.json names no dataset; pass --dataset")
    seed = int(model.meta.get("config", {}).get("seed", 0))
    return name, resolve_dataset(name, data_dir, seed)


def _ints(values: Sequence[str], flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for text in values for v in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"{flag} takes integers, got {' '.join(values)!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from pauc_ray.evaluation.report import EvalConfig

    d = EvalConfig()
    p = argparse.ArgumentParser(
        prog="python -m pauc_ray.evaluate",
        description="Evaluate a finished model on frozen features: kNN and linear-probe "
        "top-1/top-5, NEMD per clustering, alignment and uniformity, eval.json and PNGs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="RUN_OR_EXPORT", help="run folder or its export/ folder")
    p.add_argument("--out", required=True, help="output folder for eval.json and the PNGs")
    p.add_argument(
        "--dataset", default=None, help="dataset name as for training; None: the model's"
    )
    p.add_argument("--data-dir", default="./data", help="where prepared datasets are kept")
    p.add_argument(
        "--num-clusters",
        nargs="+",
        default=None,
        metavar="K",
        help="K of each clustering for NEMD (e.g. 20,40,80); None: the run's K's",
    )
    p.add_argument(
        "--knn-k", nargs="+", default=[str(k) for k in d.knn_ks], metavar="K", help="kNN k's"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="every subsample and fit")
    p.add_argument(
        "--max-samples", type=int, default=None, help="rows per split at most (seeded); None: all"
    )
    p.add_argument(
        "--tsne-samples", type=int, default=d.tsne_samples, help="held-out points in the map"
    )
    p.add_argument(
        "--instance-samples",
        type=int,
        default=d.instance_samples,
        help="held-out samples for alignment and uniformity",
    )
    p.add_argument(
        "--representation",
        choices=("backbone", "projection"),
        default=d.representation,
        help="backbone: pooled features, projection head removed (as MoCo v2 and PCL "
        "evaluate); projection: the head's output",
    )
    p.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the raw-input and random-init kNN baselines",
    )
    p.add_argument(
        "--device", default="auto", help="auto (a GPU when one is visible), cpu, cuda or cuda:N"
    )
    p.add_argument("--no-plots", action="store_true", help="numbers only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pauc_ray.evaluation.report import EvalConfig, evaluate_model

    try:
        config = EvalConfig(
            knn_ks=_ints(args.knn_k, "--knn-k"),
            num_clusters=_ints(args.num_clusters, "--num-clusters") if args.num_clusters else None,
            max_samples=args.max_samples,
            seed=args.seed,
            tsne_samples=args.tsne_samples,
            instance_samples=args.instance_samples,
            device=args.device,
            plots=not args.no_plots,
            representation=args.representation,
            baselines=not args.no_baselines,
        )
        model = load_model(args.model)
        name, dataset_dir = resolve_eval_dataset(model, args.dataset, args.data_dir)
        result = evaluate_model(model, dataset_dir, args.out, config, dataset_name=name)
    except (ExportError, DatasetError, ValueError, FileNotFoundError) as exc:
        message = " ".join(str(exc).split())  # one line
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(result["summary"], indent=2))
    print(f"eval: {Path(args.out) / 'eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
