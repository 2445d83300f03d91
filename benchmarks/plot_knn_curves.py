"""kNN top-1 against training minutes (and epochs) for finished runs, with the run's raw-input
and random-init baselines as horizontal lines: the picture that says whether pretraining
learned anything a kNN can use.

Reads each run folder's ``history.json`` (runs trained with ``--eval-every 1`` have a point per
epoch) and ``summary.json``.

Run: ``python benchmarks/plot_knn_curves.py RUN_DIR [RUN_DIR ...] --out docs/curve.png``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(run_dir: Path) -> tuple[list[float], list[int], list[float], dict]:
    history = json.loads((run_dir / "history.json").read_text())
    minutes, epochs, knn, elapsed = [], [], [], 0.0
    for row in history:
        elapsed += row["epoch_seconds"] / 60.0
        if row.get("knn_top1") is not None:
            minutes.append(elapsed)
            epochs.append(row["epoch"])
            knn.append(row["knn_top1"])
    last = next((r for r in reversed(history) if r.get("raw_knn_top1") is not None), {})
    return minutes, epochs, knn, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--labels", nargs="*", default=None, help="one per run (default: names)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="kNN top-1 on the held-out split")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = args.labels or [r.name for r in args.runs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    baselines = {}
    for run, label in zip(args.runs, labels):
        minutes, epochs, knn, last = curve(run)
        axes[0].plot(minutes, knn, marker="o", ms=3, label=label)
        axes[1].plot(epochs, knn, marker="o", ms=3, label=label)
        for key in ("raw_knn_top1", "random_init_knn_top1"):
            if last.get(key) is not None:
                baselines.setdefault(key, last[key])
    names = {"raw_knn_top1": "raw input", "random_init_knn_top1": "random init"}
    for ax, xlabel in zip(axes, ("training minutes (sum of epoch times)", "epoch")):
        for i, (key, value) in enumerate(baselines.items()):
            ax.axhline(value, ls="--", color=f"C{7 + i}", label=f"{names[key]} {value:.2f} %")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("kNN top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
