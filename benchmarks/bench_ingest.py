"""Ray Data ingest rate: rows/s the train split streams at, read and decoded from Parquet.

    .venv/bin/python benchmarks/bench_ingest.py [--dataset fashion-mnist] [--epochs 2]

Compare with the rate training consumes (``samples_per_second`` in a run's history, or
``benchmarks/bench_train.py``): ingest must stay well above it or the workers wait on data.
Never run from the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import ray

from pauc_ray.data import resolve_dataset
from pauc_ray.data.ray_dataset import read_split
from pauc_ray.train.driver import init_ray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "pauc-data"))
    args = parser.parse_args()
    directory = resolve_dataset(args.dataset, args.data_dir)
    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    results = {"dataset": args.dataset, "batch_size": args.batch_size, "epochs": []}
    dataset = read_split(directory, "train")
    for _ in range(args.epochs):
        start, rows = time.perf_counter(), 0
        for batch in dataset.iter_torch_batches(batch_size=args.batch_size):
            rows += len(batch["id"])
        seconds = time.perf_counter() - start
        results["epochs"].append(
            {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}
        )
    materialized = dataset.materialize()
    start, rows = time.perf_counter(), 0
    for batch in materialized.iter_torch_batches(batch_size=args.batch_size):
        rows += len(batch["id"])
    seconds = time.perf_counter() - start
    results["materialized_rows_per_second"] = rows / seconds
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
