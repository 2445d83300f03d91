"""The Fashion-MNIST sweep's table for docs/results.md, from the committed trial records.

    .venv/bin/python experiments/fmnist-sweep/table.py [SWEEP_DIR]

Reads ``trials/*/config.json`` and ``history.json`` (one row per trial: its sampled values,
kNN top-1 at each ASHA rung and at its last epoch, NEMD and NEMD-nn at its last epoch), sorted
by how far the trial got, then by its last kNN; then the rank agreement between the rungs and
the final epoch among the trials that ran every epoch (Spearman, scipy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy.stats import spearmanr

RUNGS = (3, 6)


def rows(sweep: Path) -> list[dict]:
    out = []
    for trial in sorted((sweep / "trials").iterdir()):
        history_file = trial / "history.json"
        if not history_file.is_file():
            continue
        config = json.loads((trial / "config.json").read_text())
        history = json.loads(history_file.read_text())
        by_epoch = {m["epoch"]: m for m in history}
        loss = config["loss"]
        last = history[-1]
        out.append(
            {
                "trial": trial.name.rsplit("_", 1)[-1],
                "alpha": loss["alpha"],
                "beta": loss["beta"],
                "gamma": loss["gamma"],
                "tau": loss["temperature"],
                "rho": loss["corr_temperature"],
                "epochs": last["epoch"],
                "of": config["epochs"],
                **{f"knn@{e}": by_epoch.get(e, {}).get("knn_top1") for e in RUNGS},
                "knn": last["knn_top1"],
                "nemd": last.get("nemd"),
                "nemd_nn": last.get("nemd_nn"),
                "raw": last.get("raw_knn_top1"),
                "random": last.get("random_init_knn_top1"),
            }
        )
    return sorted(out, key=lambda r: (r["epochs"], r["knn"]), reverse=True)


def fmt(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def main(sweep: Path) -> None:
    table = rows(sweep)
    head = ["trial", "alpha", "beta", "gamma", "tau", "rho", "epochs"]
    head += [f"kNN@{e}" for e in RUNGS] + ["final kNN", "NEMD", "NEMD-nn"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * 4 + "---:|" * (len(head) - 4))
    for r in table:
        cells = [r["trial"], fmt(r["alpha"]), fmt(r["beta"]), fmt(r["gamma"]), fmt(r["tau"])]
        cells += [fmt(r["rho"]), str(r["epochs"])]
        cells += [f"{r[f'knn@{e}']:.2f}" if r[f"knn@{e}"] is not None else "" for e in RUNGS]
        cells += [f"{r['knn']:.2f}", f"{r['nemd']:.3f}", f"{r['nemd_nn']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    baselines = {(r["raw"], r["random"]) for r in table}
    print(f"\nbaselines (raw input, random init), same memory and queries: {sorted(baselines)}")
    full = [r for r in table if r["epochs"] == r["of"]]
    for e in RUNGS:
        pairs = [(r[f"knn@{e}"], r["knn"]) for r in full if r[f"knn@{e}"] is not None]
        if len(pairs) >= 3:
            rho, p = spearmanr(*zip(*pairs, strict=True))
            print(f"rung {e} vs final, {len(pairs)} full trials: Spearman {rho:.2f} (p = {p:.2g})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
