"""``python -m pauc_ray.data``: prepare and validate datasets.

    python -m pauc_ray.data prepare digits --out data/digits
    python -m pauc_ray.data prepare fashion-mnist --out data/fmnist [--from DIR]
    python -m pauc_ray.data prepare blobs --classes 10 --out data/blobs-10
    python -m pauc_ray.data prepare imagefolder:/data/in100 --image-size 64 --out data/in100
    python -m pauc_ray.data prepare imagefolder:s3://b/raw/in100 --out s3://b/data/in100 --workers 16
    python -m pauc_ray.data validate data/fmnist [--split train] [--full]

Bad input exits with status 2 and one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

from pauc_ray.data.parquet_io import DatasetError
from pauc_ray.data.sources import SOURCES, PrepareConfig, prepare
from pauc_ray.data.validation import validate_dataset

_DEFAULTS = PrepareConfig()


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like data mistakes: one ``error:`` line, status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pauc_ray.data",
        description="Prepare and validate datasets (Parquet shards plus dataset.json).",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    prep = commands.add_parser("prepare", help="write a source as Parquet shards")
    prep.add_argument("source", help=f"one of: {', '.join(SOURCES)}")
    prep.add_argument(
        "--out", required=True, help="output folder: a local path or a URI (s3://bucket/data/x)"
    )
    prep.add_argument("--from", dest="from_dir", type=Path, help="folder of the idx files")
    prep.add_argument(
        "--test-fraction",
        type=float,
        default=_DEFAULTS.test_fraction,
        help="share of each class held out as test, for sources without their own split "
        "(default %(default)s; 0: train only)",
    )
    prep.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="split and blobs seed (%(default)s)"
    )
    prep.add_argument(
        "--rows-per-file", type=int, default=_DEFAULTS.rows_per_file, help="(%(default)s)"
    )
    prep.add_argument("--limit", type=int, help="keep the first N rows of each split")
    prep.add_argument("--classes", type=int, default=_DEFAULTS.classes, help="blobs")
    prep.add_argument(
        "--samples-per-class", type=int, default=_DEFAULTS.samples_per_class, help="blobs"
    )
    prep.add_argument("--dim", type=int, default=_DEFAULTS.dim, help="blobs")
    prep.add_argument("--image-size", type=int, help="imagefolder: resize to this square")
    prep.add_argument("--channels", type=int, choices=(1, 3), default=_DEFAULTS.channels)
    prep.add_argument(
        "--workers",
        type=int,
        help="imagefolder: Ray tasks at a time, one CPU each, on every node of the cluster "
        "(RAY_ADDRESS joins one; else a local one starts). Default: the cluster's CPUs; "
        "0: in this process, without Ray",
    )
    prep.add_argument("--overwrite", action="store_true", help="replace a prepared dataset")
    prep.add_argument("--no-progress", action="store_true")

    val = commands.add_parser("validate", help="check a prepared dataset")
    val.add_argument("directory", help="a prepared dataset: local path or URI")
    val.add_argument("--split", help="one split (default: all in dataset.json)")
    val.add_argument("--full", action="store_true", help="decode every image, not only headers")
    return parser


def _prepare(args: argparse.Namespace) -> str:
    names = {f.name for f in fields(PrepareConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    config = PrepareConfig(**values, progress=not args.no_progress)
    started = time.perf_counter()
    info = prepare(args.source, args.out, config)
    counts = ", ".join(f"{split} {rows}" for split, rows in info.counts.items())
    shape = (
        f"{info.channels}x{info.height}x{info.width} images"
        if info.kind == "image"
        else f"{info.dim}-d vectors"
    )
    seconds = time.perf_counter() - started
    rate = sum(info.counts.values()) / seconds if seconds > 0 else float("inf")
    return (
        f"wrote {info.name} ({shape}, {info.num_classes} classes) to {args.out}: {counts} rows "
        f"in {seconds:.1f} s ({rate:,.0f} rows/s)"
    )


def _validate(args: argparse.Namespace) -> str:
    report = validate_dataset(args.directory, args.split, decode=args.full)
    lines = [
        f"{s.split}: {s.rows} rows in {s.files} file(s) ok ({s.seconds:.2f} s)"
        for s in report.splits
    ]
    how = "images decoded" if args.full else "image headers checked"
    return "\n".join([f"{args.directory}: valid ({how})", *lines])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = _prepare(args) if args.command == "prepare" else _validate(args)
    except (DatasetError, ValueError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
