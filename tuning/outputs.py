"""What a sweep leaves in ``--out DIR``: ``results.csv``, ``best.yaml``, ``summary.json`` and
``plots/objective_vs_<param>.png``.

- ``results.csv``: one row per trial: status (``COMPLETED``, ``STOPPED_EARLY`` by ASHA,
  ``ERROR`` with its message, ``UNFINISHED`` in an interrupted sweep), the values it trained with, the last and best objective and
  metrics, the run folder.
- ``best.yaml``: the sweep's base config with the best trial's values, every setting spelled
  out, so ``python -m pauc_ray.train --config DIR/best.yaml`` trains it as is (no ``name``:
  each run gets a fresh one). The best trial is the one with the best *final* objective among
  those that ran every epoch (among all that reported, when none did).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pauc_ray.config_io import from_dict
from pauc_ray.train.config import TrainConfig
from tuning.objective import OBJECTIVE_KEY, Objective
from tuning.search_space import SearchSpace
from tuning.trial import tuned_config

COMPLETED, STOPPED_EARLY, ERROR = "COMPLETED", "STOPPED_EARLY", "ERROR"
UNFINISHED = "UNFINISHED"  # interrupted sweep; --resume runs it
TRACKED = ("knn_top1", "knn_top5", "nemd", "nemd_nn")


@dataclass
class TrialRecord:
    """One trial as the outputs see it (built from Tune's results, or by hand in tests)."""

    trial_id: str
    sampled: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # reported metrics per epoch
    error: str | None = None
    run_dir: str | None = None
    finished: bool = True  # False: the sweep was interrupted while it ran or waited


def error_line(error: Any) -> str:
    """The most telling line of an error (Ray wraps the cause's traceback in its message)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]:
            return line
    return lines[-1] if lines else type(error).__name__


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def build_rows(
    records: Iterable[TrialRecord],
    space: SearchSpace,
    objective: Objective,
    epochs: int,
    default_values: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    varying = [p.name for p in space.params if p.distribution != "fixed"]
    for record in records:
        try:
            values = space.resolve(record.sampled)
        except KeyError:
            values = {n: record.sampled.get(n) for n in space.names}
        history = [h for h in record.history if h.get("epoch") is not None]
        last = history[-1] if history else {}
        epoch = int(last.get("epoch", 0) or 0)
        if record.error:
            status = ERROR
        elif not record.finished:
            status = UNFINISHED
        else:
            status = COMPLETED if epoch >= epochs else STOPPED_EARLY
        row: dict[str, Any] = {"trial_id": record.trial_id, "status": status, "epochs": epoch}
        row["defaults"] = default_values is not None and all(
            values.get(n) is not None and math.isclose(values[n], default_values[n], rel_tol=1e-9)
            for n in varying
        )
        row.update(values)
        series = [_finite(h.get(OBJECTIVE_KEY)) for h in history]
        series = [v for v in series if v is not None]
        pick = max if objective.mode == "max" else min
        row["objective_final"] = series[-1] if series else None
        row["objective_best"] = pick(series) if series else None
        for name in TRACKED:
            values_seen = [v for v in (_finite(h.get(name)) for h in history) if v is not None]
            row[f"{name}_final"] = values_seen[-1] if values_seen else None
            best = max if name.startswith("knn") else min
            row[f"{name}_best"] = best(values_seen) if values_seen else None
        row["error"] = error_line(record.error) if record.error else ""
        row["run_dir"] = record.run_dir or ""
        rows.append(row)
    return rows


def best_row(rows: Sequence[Mapping[str, Any]], objective: Objective) -> Mapping[str, Any] | None:
    scored = [
        r
        for r in rows
        if r["status"] in (COMPLETED, STOPPED_EARLY) and r["objective_final"] is not None
    ]
    complete = [r for r in scored if r["status"] == COMPLETED] or scored
    if not complete:
        return None
    sign = 1.0 if objective.mode == "max" else -1.0
    return max(complete, key=lambda r: sign * r["objective_final"])


def default_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((r for r in rows if r["defaults"]), None)


def write_results_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["trial_id"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _plain(value: Any) -> Any:
    """YAML-safe: tuples to lists, recursively."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def best_config(base: Mapping[str, Any], row: Mapping[str, Any], space: SearchSpace) -> TrainConfig:
    """The base config with the row's values (validated by building the dataclass)."""
    data = tuned_config(base, {n: float(row[n]) for n in space.names})
    data["name"] = None
    return from_dict(TrainConfig, data)


def write_best_yaml(
    path: Path,
    config: TrainConfig,
    row: Mapping[str, Any],
    objective: Objective,
    space: SearchSpace,
    sweep_dir: Path,
) -> Path:
    values = ", ".join(f"{name}={float(row[name]):.4g}" for name in space.names)
    header = (
        f"# Best trial {row['trial_id']} of the sweep in {sweep_dir}\n"
        f"# objective {objective.describe()}: {row['objective_final']:.6g} after "
        f"{row['epochs']} epochs\n"
        f"# tuned: {values}\n"
        f"# train it: python -m pauc_ray.train --config {path}  (flags override, e.g. --epochs)\n"
    )
    body = yaml.safe_dump(_plain(config.to_dict()), sort_keys=False, default_flow_style=False)
    path.write_text(header + body)
    return path


def plot_parameters(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    objective: Objective,
) -> list[Path]:
    """One PNG per varying parameter: final objective of each trial against its value (log
    axis for log-uniform parameters, with exact zeros on a linear stretch near 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    scored = [r for r in rows if r["status"] != ERROR and r["objective_final"] is not None]
    paths = []
    for param in space.params:
        if param.distribution == "fixed":
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=110)
        for status, marker, colour in (
            (COMPLETED, "o", "tab:blue"),
            (STOPPED_EARLY, "v", "tab:orange"),
        ):
            points = [
                (r[param.name], r["objective_final"]) for r in scored if r["status"] == status
            ]
            if points:
                xs, ys = zip(*points)
                label = "completed" if status == COMPLETED else "stopped early (ASHA)"
                ax.scatter(xs, ys, marker=marker, color=colour, label=label, alpha=0.85)
        defaults = [r for r in scored if r["defaults"]]
        if defaults:
            ax.scatter(
                [r[param.name] for r in defaults],
                [r["objective_final"] for r in defaults],
                marker="*",
                s=180,
                facecolor="none",
                edgecolor="black",
                label="defaults",
            )
        if param.log_scale:
            if any(r[param.name] == 0 for r in scored):
                ax.set_xscale("symlog", linthresh=param.low)
            else:
                ax.set_xscale("log")
        ax.set_xlabel(param.name)
        ax.set_ylabel(f"final {objective.describe()}")
        ax.set_title(f"objective vs {param.name} ({len(scored)} trials)")
        ax.grid(alpha=0.3)
        if scored:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"objective_vs_{param.name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_objective_by_trial(
    path: Path, rows: Sequence[Mapping[str, Any]], objective: Objective
) -> Path | None:
    """Each trial's final objective in the order the trials were created, the best so far as
    a step line, early-stopped trials marked; None when no trial has a value yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [
        (i, r)
        for i, r in enumerate(rows)
        if r["status"] != ERROR and r["objective_final"] is not None
    ]
    if not scored:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for status, marker, colour, label in (
        (COMPLETED, "o", "tab:blue", "completed"),
        (STOPPED_EARLY, "v", "tab:orange", "stopped early (ASHA)"),
        (UNFINISHED, "x", "tab:gray", "unfinished"),
    ):
        points = [(i, r["objective_final"]) for i, r in scored if r["status"] == status]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, marker=marker, color=colour, label=label)
    pick = max if objective.mode == "max" else min
    completed = [(i, r["objective_final"]) for i, r in scored if r["status"] == COMPLETED]
    if completed:
        best, xs, ys = None, [], []
        for i, value in completed:
            best = value if best is None else pick(best, value)
            xs.append(i)
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", lw=1, label="best completed so far")
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel(f"final {objective.describe()}")
    ax.set_title(f"objective by trial ({len(scored)} trials)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(
    out: Path,
    rows: Sequence[Mapping[str, Any]],
    settings_base: Mapping[str, Any],
    space: SearchSpace,
    objective: Objective,
) -> dict[str, Any]:
    """Writes every output; returns the summary (also ``summary.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    write_results_csv(out / "results.csv", rows)
    plots = plot_parameters(out / "plots", rows, space, objective)
    by_trial = plot_objective_by_trial(out / "plots" / "objective_by_trial.png", rows, objective)
    plots += [by_trial] if by_trial is not None else []
    best = best_row(rows, objective)
    default = default_row(rows)
    summary: dict[str, Any] = {
        "objective": objective.describe(),
        "trials": len(rows),
        "by_status": {
            s: sum(r["status"] == s for r in rows)
            for s in (COMPLETED, STOPPED_EARLY, ERROR, UNFINISHED)
        },
        "results_csv": str(out / "results.csv"),
        "plots": [str(p) for p in plots],
        "best": dict(best) if best else None,
        "defaults": dict(default) if default else None,
        "best_yaml": None,
    }
    if best is not None:
        config = best_config(settings_base, best, space)
        summary["best_yaml"] = str(
            write_best_yaml(out / "best.yaml", config, best, objective, space, out)
        )
        if default is not None and default["objective_final"] is not None:
            summary["improvement_over_defaults"] = (
                best["objective_final"] - default["objective_final"]
            )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
