"""MoCo vs PCL vs PAUC through the Ray trainer, evaluated offline (Fashion-MNIST by default).

Every run gets the same dataset, seed, backbone, batch size, epochs and every other setting;
only the loss differs (``moco``, ``pcl``, ``pauc``; with ``--ablation`` also PCL plus each PAUC
term alone: ``pcl+p-align``, ``pcl+p-uniform``, ``pcl+p-corr``, i.e. method ``pauc`` with the
other two weights set to 0). Each finished export is evaluated with
:func:`pauc_ray.evaluation.report.evaluate_model` (kNN, linear probe, NEMD, alignment and
uniformity, pictures). ``OUT/table.md``, ``OUT/results.json`` and ``OUT/figure.png`` give each
metric's mean and standard deviation over seeds, and each variant against PCL paired by seed
(mean difference, paired t-test); ``OUT/curves.png`` the kNN curve of every variant (runs with
``--eval-every``), mean over seeds with the seeds' range. They are rewritten after every run.

A run whose ``summary.json`` and export exist is not trained again, one with a checkpoint but
no summary is resumed, and an existing ``eval.json`` is reused, so the same command continues
an interrupted comparison. (The wall time of a resumed run counts only its resumed part.) A
run folder trained with other settings is an error, never silently reused (settings of where
and how it executes, such as storage, data_dir or channels_last, do not count).

The runs start from the dataset's shipped recipe (:mod:`pauc_ray.recipes`; for Fashion-MNIST a
small ConvNet measured to beat raw-pixel kNN on a 2-core CPU); flags override it. Two baseline
rows come with every table: kNN on the raw inputs and on the same encoder at random
initialisation, on the same split.

Run: ``python -m pauc_ray.experiments.compare --dataset fashion-mnist --methods moco pcl pauc``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pauc_ray.config import PROTOTYPE_TERMS
from pauc_ray.data import DatasetError
from pauc_ray.evaluation.report import EVAL_FILE, EvalConfig
from pauc_ray.export import ExportError
from pauc_ray.model.backbones import BACKBONES

log = logging.getLogger(__name__)

# variant -> (trainer method, loss weights set to 0); the remaining weights are the base
# config's (LossConfig: alpha = beta = 1, gamma = 0.1). "pcl+TERM" is PCL plus one prototype
# term: pauc with every other term's weight at 0.
_ONE_TERM = {
    f"pcl+{term.label}": ("pauc", tuple(o.weight for o in PROTOTYPE_TERMS if o is not term))
    for term in PROTOTYPE_TERMS
}
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "moco": ("moco", ()),
    "pcl": ("pcl", ()),
    "pauc": ("pauc", ()),
    **_ONE_TERM,
}
ABLATION = ("pcl", *_ONE_TERM)
METRICS = (
    ("knn20_top1", "kNN@20 top-1 (%)", "{:.2f}"),
    ("knn200_top1", "kNN@200 top-1 (%)", "{:.2f}"),
    ("linear_top1", "linear top-1 (%)", "{:.2f}"),
    ("nemd", "NEMD", "{:.4f}"),
    ("nemd_nn", "NEMD-nn", "{:.4f}"),
    ("alignment", "alignment", "{:.3f}"),
    ("uniformity", "uniformity", "{:.3f}"),
    ("train_minutes", "train (min)", "{:.1f}"),
    ("wall_minutes", "wall (min)", "{:.1f}"),
)
# metrics of the paired comparison against PCL, and whether higher is better
PAIRED_METRICS = (("knn20_top1", True), ("linear_top1", True), ("nemd", True))
PAIRED_BASELINE = "pcl"


@dataclass(frozen=True)
class CompareConfig:
    """Settings of the comparison (the flags of ``python -m pauc_ray.experiments.compare``).

    Attributes:
        dataset, data_dir: as for ``python -m pauc_ray.train``.
        methods: variants to run (keys of ``VARIANTS``).
        seeds: one run per variant and seed.
        epochs, backbone, batch_size, workers: shared by every run; None keeps the recipe's
            (or the base config's).
        warmup_epochs: InfoNCE-only epochs before the prototype terms (``loss.warmup_epochs``);
            None keeps the recipe's (or the base config's).
        eval_every: kNN/NEMD evaluation every N epochs during each run (its history gives the
            curve); None keeps the recipe's (or the base config's).
        recipe: the recipe every run starts from (``auto``: the dataset's shipped one).
        output_size: ``augment.output_size`` (None: the images' own size).
        base_config: YAML/JSON of further ``TrainConfig`` settings shared by every run.
        ablation: add ``ABLATION`` to ``methods``.
        ablation_seeds: the seeds of the variants only the ablation adds (None: ``seeds``).
        out: where ``runs/``, ``eval/``, the table, results and figure go.
        evaluation: settings of the offline evaluation of each export.
    """

    dataset: str = "fashion-mnist"
    data_dir: str = "./data"
    methods: tuple[str, ...] = ("moco", "pcl", "pauc")
    seeds: tuple[int, ...] = (0,)
    epochs: int | None = None
    backbone: str | None = None
    batch_size: int | None = None
    workers: str = "2"
    warmup_epochs: int | None = None
    output_size: int | None = None
    eval_every: int | None = None
    recipe: str = "auto"
    base_config: str | None = None
    ablation: bool = False
    ablation_seeds: tuple[int, ...] | None = None
    out: str = "runs/compare"
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in VARIANTS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be among {sorted(VARIANTS)}, got {list(self.methods)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if (self.epochs is not None and self.epochs < 1) or (
            self.batch_size is not None and self.batch_size < 1
        ):
            raise ValueError("epochs and batch_size must be >= 1")

    @property
    def variants(self) -> tuple[str, ...]:
        extra = ABLATION if self.ablation else ()
        return tuple(dict.fromkeys((*self.methods, *extra)))

    def runs(self) -> list[tuple[str, int]]:
        """``(variant, seed)`` of every run, seed-major (the first seed of every variant
        first); a variant only the ablation adds runs its ``ablation_seeds``."""
        ablation_only = set(self.variants) - set(self.methods)
        ablation_seeds = self.seeds if self.ablation_seeds is None else self.ablation_seeds
        seeds = dict.fromkeys((*self.seeds, *ablation_seeds))
        return [
            (variant, seed)
            for seed in seeds
            for variant in self.variants
            if seed in (ablation_seeds if variant in ablation_only else self.seeds)
        ]


def run_name(variant: str, seed: int) -> str:
    return f"{variant.replace('+', '_')}-seed{seed}"


def train_config_for(config: CompareConfig, variant: str, seed: int):
    """The run's ``TrainConfig``: the recipe, the base file, then the shared settings, then the
    variant's loss."""
    from pauc_ray.config_io import load_config_file, merge
    from pauc_ray.train.config import resolve_config

    method, zeroed = VARIANTS[variant]
    base = load_config_file(config.base_config) if config.base_config else {}
    given = {"epochs": config.epochs, "backbone": config.backbone, "batch_size": config.batch_size}
    shared: dict[str, Any] = {
        "dataset": config.dataset,
        "data_dir": config.data_dir,
        "seed": seed,
        **{k: v for k, v in given.items() if v is not None},
        "workers": config.workers,
        "storage": str(Path(config.out) / "runs"),
        "name": run_name(variant, seed),
        "method": method,
        "loss": {name: 0.0 for name in zeroed},
    }
    if config.warmup_epochs is not None:
        shared["loss"]["warmup_epochs"] = config.warmup_epochs
    if config.eval_every is not None:
        shared["eval_every"] = config.eval_every
    if config.output_size is not None:
        shared["augment"] = {"output_size": config.output_size}
    return resolve_config(merge(base, shared), config.recipe)


# TrainConfig settings that say where a run lives and how it executes, not what it learns: a
# run trained with other values of these is the same run (channels_last: the same values up to
# rounding, benchmarks/RESULTS.md; it changed from False to auto after some records were kept)
_WHERE_AND_HOW = (
    "storage",
    "data_dir",
    "channels_last",
    "checkpoint_every",
    "checkpoint_upload",
    "cpus_per_worker",
    "max_failures",
    "mlflow_experiment",
    "mlflow_uri",
)


def _train(train_config) -> dict[str, Any]:
    from pauc_ray.checkpoint import find_latest_checkpoint
    from pauc_ray.train.driver import run_training

    run_dir = Path(train_config.storage) / train_config.name
    if (run_dir / "config.json").is_file():  # never continue or reuse a run of other settings
        saved = json.loads((run_dir / "config.json").read_text())
        expected = json.loads(train_config.to_json())
        # a setting added after the run was trained counts as its default, which keeps the
        # behaviour from before it existed
        defaults = json.loads(type(train_config)().to_json())
        changed = sorted(
            k
            for k in expected
            if k not in _WHERE_AND_HOW and saved.get(k, defaults[k]) != expected[k]
        )
        if changed:
            raise ValueError(
                f"{run_dir} was trained with other settings ({', '.join(changed)}); "
                "choose another --out or remove that run"
            )
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("error") is None and summary.get("export"):
            log.warning("%s: finished before (summary.json), not trained again", run_dir)
            return summary
    if find_latest_checkpoint(run_dir) is not None:
        log.warning("%s: resuming from its latest checkpoint", run_dir)
        return run_training(train_config, resume=str(run_dir), console=True)
    return run_training(train_config, console=True)


def _evaluate(config: CompareConfig, train_config, summary, eval_dir: Path) -> dict[str, Any]:
    from pauc_ray.data import resolve_dataset
    from pauc_ray.evaluation.report import evaluate_model
    from pauc_ray.export import load_exported_model

    done = eval_dir / EVAL_FILE
    if done.is_file():
        result = json.loads(done.read_text())
        if evaluated_alike(result, config.evaluation, summary["export"]):
            return result
    model = load_exported_model(
        Path(config.out, "runs", train_config.name, Path(summary["export"]).name)
    )
    dataset_dir = resolve_dataset(train_config.dataset, train_config.data_dir, train_config.seed)
    return evaluate_model(model, dataset_dir, eval_dir, config.evaluation, config.dataset)


# evaluation settings that change how the numbers are computed, not what they are: where the
# encoder runs and how many samples go through it at once (eval mode: no batch statistics);
# num_clusters is resolved from the model's own config when None
_NOT_IN_THE_NUMBERS = ("num_clusters", "device", "batch_size")


def evaluated_alike(result: dict[str, Any], evaluation: EvalConfig, export: str) -> bool:
    """Whether a stored ``eval.json`` evaluated this run's export with these settings (up to
    ``_NOT_IN_THE_NUMBERS``), so it can be reused instead of evaluating again."""
    wanted = json.loads(json.dumps(dataclasses.asdict(evaluation), default=str))
    stored = result.get("settings", {})
    same = all(stored.get(k) == v for k, v in wanted.items() if k not in _NOT_IN_THE_NUMBERS)
    return same and _same_export(result.get("model"), export)


def _same_export(a: str | None, b: str | None) -> bool:
    """Whether two paths name the same run's export, wherever the comparison folder lives now
    (records are committed and reused from another checkout, so absolute paths differ)."""
    return a is not None and b is not None and Path(a).parts[-2:] == Path(b).parts[-2:]


def run_one(config: CompareConfig, variant: str, seed: int) -> dict[str, Any]:
    """Trains (or reuses) one run and evaluates its export; returns the row of the table."""
    train_config = train_config_for(config, variant, seed)
    summary = _train(train_config)
    # the run folder under this --out, not the absolute path summary.json was written with
    run_dir = Path(config.out) / "runs" / run_name(variant, seed)
    row: dict[str, Any] = {
        "variant": variant,
        "method": train_config.method,
        "seed": seed,
        "run_dir": str(run_dir),
        "wall_seconds": summary["wall_seconds"],
        "wall_minutes": summary["wall_seconds"] / 60.0,
        "train_minutes": _train_minutes(run_dir),
        "epochs_completed": summary["epochs_completed"],
        "error": summary.get("error"),
    }
    if row["error"] is None and summary.get("export"):
        eval_dir = Path(config.out) / "eval" / run_name(variant, seed)
        result = _evaluate(config, train_config, summary, eval_dir)
        row.update(result["summary"], eval_dir=str(eval_dir))
    elif row["error"] is None:
        row["error"] = "the run wrote no export"
    return row


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _train_minutes(run_dir: Path) -> float | None:
    """The epochs' own time (feature pass, clustering, steps; no evaluation, no start-up),
    summed over the run's history, so a resumed run counts every epoch once."""
    seconds = [row.get("epoch_seconds") for row in _history(run_dir)]
    return sum(seconds) / 60.0 if seconds and None not in seconds else None


BASELINES = (("raw input", "raw_"), ("random init", "random_init_"))


def _mean_std(entry: dict[str, Any], key: str, values: list[float]) -> None:
    array = np.array(values, dtype=float)
    entry[f"{key}_mean"] = float(array.mean()) if len(array) else None
    entry[f"{key}_std"] = float(array.std(ddof=1)) if len(array) > 1 else None


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: the number of finished seeds and each metric's mean and std (ddof 1); then
    the two baselines (kNN columns only), one value per seed."""
    out = []
    keys = (*METRICS, ("nemd_num_clusters", "", ""))
    finished = [r for r in rows if r.get("error") is None]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in finished if r["variant"] == variant]
        entry: dict[str, Any] = {"variant": variant, "seeds": len(group)}
        for key, _, _ in keys:
            _mean_std(entry, key, [g[key] for g in group if g.get(key) is not None])
        out.append(entry)
    for name, prefix in BASELINES:
        per_seed: dict[int, dict[str, Any]] = {}  # every variant of a seed shares them
        for r in finished:
            if r.get(f"{prefix}knn20_top1") is not None:
                per_seed.setdefault(r["seed"], r)
        if not per_seed:
            continue
        entry = {"variant": name, "seeds": len(per_seed)}
        for key, _, _ in keys:
            values = [r.get(f"{prefix}{key}") for r in per_seed.values()]
            _mean_std(entry, key, [v for v in values if v is not None])
        out.append(entry)
    return out


def paired_tests(
    rows: Sequence[dict[str, Any]], baseline: str = PAIRED_BASELINE
) -> list[dict[str, Any]]:
    """Each variant against ``baseline`` on the seeds both finished, paired by seed: the mean
    and standard deviation of the per-seed differences and a two-sided paired t-test
    (``scipy.stats.ttest_rel``; p is None below 2 pairs or when every difference is equal)."""
    from scipy import stats

    finished = [r for r in rows if r.get("error") is None]
    base = {r["seed"]: r for r in finished if r["variant"] == baseline}
    out = []
    for variant in dict.fromkeys(r["variant"] for r in finished):
        if variant == baseline:
            continue
        mine = {r["seed"]: r for r in finished if r["variant"] == variant}
        for key, higher_is_better in PAIRED_METRICS:
            seeds = sorted(
                s for s in set(mine) & set(base)
                if mine[s].get(key) is not None and base[s].get(key) is not None
            )  # fmt: skip
            if not seeds:
                continue
            a = np.array([mine[s][key] for s in seeds], dtype=float)
            b = np.array([base[s][key] for s in seeds], dtype=float)
            diff = a - b
            p = None
            if len(seeds) > 1 and np.ptp(diff) > 0:
                p = float(stats.ttest_rel(a, b).pvalue)
            out.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    "metric": key,
                    "higher_is_better": higher_is_better,
                    "seeds": seeds,
                    "differences": diff.tolist(),
                    "mean_difference": float(diff.mean()),
                    "std_difference": float(diff.std(ddof=1)) if len(seeds) > 1 else None,
                    "p_value": p,
                }
            )
    return out


def format_paired(tests: Sequence[dict[str, Any]]) -> str:
    """The paired comparison as a table, with what it does and does not show."""
    if not tests:
        return ""
    labels = {key: label for key, label, _ in METRICS}
    lines = [
        f"\nPaired by seed against {tests[0]['baseline']} (difference = variant - "
        f"{tests[0]['baseline']}; two-sided paired t-test):\n",
        "| variant | metric | seeds | mean difference | std | p | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for t in tests:
        p, std = t["p_value"], t["std_difference"]
        if p is None:
            verdict = "too few seeds to test"
        elif p < 0.05:
            better = (t["mean_difference"] > 0) == t["higher_is_better"]
            verdict = ("better" if better else "worse") + " (p < 0.05)"
        else:
            verdict = "no significant difference"
        lines.append(
            f"| {t['variant']} | {labels[t['metric']]} | {len(t['seeds'])} "
            f"| {t['mean_difference']:+.4f} | {'-' if std is None else f'{std:.4f}'} "
            f"| {'-' if p is None else f'{p:.3f}'} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def draw_curves(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> bool:
    """kNN top-1 against epoch for every variant: the mean over its seeds, the seeds' range
    shaded, and the raw-input and random-init baselines as lines. False when no run was
    evaluated during training (nothing drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = [r for r in rows if r.get("error") is None]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn, baselines = False, {}
    for i, variant in enumerate(dict.fromkeys(r["variant"] for r in finished)):
        curves = {}
        for r in (r for r in finished if r["variant"] == variant):
            for h in _history(Path(r["run_dir"])):
                if h.get("knn_top1") is not None:
                    curves.setdefault(h["epoch"], []).append(h["knn_top1"])
                for key in ("raw_knn_top1", "random_init_knn_top1"):
                    if h.get(key) is not None:
                        baselines.setdefault(key, h[key])
        if not curves:
            continue
        epochs = sorted(curves)
        values = [np.array(curves[e]) for e in epochs]
        runs = max(len(v) for v in values)
        label = f"{variant} ({runs} seed{'s' if runs > 1 else ''})"
        ax.plot(epochs, [v.mean() for v in values], marker="o", ms=3, color=f"C{i}", label=label)
        if runs > 1:
            lo, hi = [v.min() for v in values], [v.max() for v in values]
            ax.fill_between(epochs, lo, hi, color=f"C{i}", alpha=0.2, lw=0)
        drawn = True
    names = {"raw_knn_top1": "raw input", "random_init_knn_top1": "random init"}
    for j, (key, value) in enumerate(baselines.items()):
        ax.axhline(value, ls="--", color=f"C{7 + j}", label=f"{names[key]} {value:.2f} %")
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel("kNN top-1 (%), in-run evaluation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def _describe(config: CompareConfig) -> str:
    sample = train_config_for(config, config.variants[0], config.seeds[0])
    return (
        f"{config.dataset}, {sample.backbone} (recipe {sample.recipe}), {sample.epochs} epochs, "
        f"batch {sample.batch_size}, workers {config.workers}, seeds "
        f"{' '.join(map(str, config.seeds))}"
        + (
            f" (ablation variants: {' '.join(map(str, config.ablation_seeds))})"
            if config.ablation and config.ablation_seeds is not None
            else ""
        )
    )


def format_table(summary: Sequence[dict[str, Any]], config: CompareConfig) -> str:
    ks = {s["nemd_num_clusters_mean"] for s in summary if s["nemd_num_clusters_mean"]}
    k_note = f" (K = {int(next(iter(ks)))})" if len(ks) == 1 else ""
    header = ["method", "seeds", *(label for _, label, _ in METRICS)]
    header[header.index("NEMD")] += k_note
    lines = [
        f"{_describe(config)}; mean ± std over seeds (std only with 2 or more)\n",
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for s in summary:
        cells = [s["variant"], str(s["seeds"])]
        for key, _, fmt in METRICS:
            mean, std = s[f"{key}_mean"], s[f"{key}_std"]
            if mean is None:
                cells.append("-")
            else:
                cells.append(
                    fmt.format(mean) + (f" ± {fmt.format(std)}" if std is not None else "")
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def draw_figure(
    rows: Sequence[dict[str, Any]], summary: Sequence[dict], path: Path, title: str = ""
) -> None:
    """One panel per metric: the mean per variant as a bar, each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [s["variant"] for s in summary]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3.4))
    for ax, (key, label, _) in zip(axes, METRICS):
        means = [s[f"{key}_mean"] if s[f"{key}_mean"] is not None else np.nan for s in summary]
        ax.bar(range(len(variants)), means, color="0.8")
        for i, variant in enumerate(variants):
            values = [r[key] for r in rows if r["variant"] == variant and r.get(key) is not None]
            ax.scatter([i] * len(values), values, s=12, color="C0", zorder=3)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(config: CompareConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    paired = paired_tests(rows)
    results = {
        "settings": dataclasses.asdict(config),
        "runs": rows,
        "summary": summary,
        "paired": paired,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "table.md").write_text(format_table(summary, config) + format_paired(paired))
    draw_curves(rows, out / "curves.png", title=_describe(config))
    if any(r.get("error") is None for r in rows):
        draw_figure(rows, summary, out / "figure.png", title=_describe(config))
    return summary


def run_comparison(config: CompareConfig) -> list[dict[str, Any]]:
    """Every run of :meth:`CompareConfig.runs`, seed-major; returns the rows (also in
    results.json)."""
    rows: list[dict[str, Any]] = []
    for variant, seed in config.runs():
        started = time.perf_counter()
        row = run_one(config, variant, seed)
        log.warning(
            "%s seed %d done in %.0f s: %s",
            variant,
            seed,
            time.perf_counter() - started,
            {k: row.get(k) for k, _, _ in METRICS},
        )
        rows.append(row)
        write_outputs(config, rows)
    return rows


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    d = CompareConfig()
    p = argparse.ArgumentParser(
        prog="python -m pauc_ray.experiments.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=d.dataset, help="as for python -m pauc_ray.train")
    p.add_argument("--data-dir", default=d.data_dir, help="where prepared datasets are kept")
    p.add_argument(
        "--methods", nargs="+", choices=list(VARIANTS), default=list(d.methods), help="variants"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds), help="one run each")
    p.add_argument("--epochs", type=int, default=d.epochs, help="every run; None: the recipe's")
    p.add_argument(
        "--backbone",
        default=d.backbone,
        choices=["auto", *BACKBONES],
        help="every run; None: the recipe's",
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help="global batch; None: the recipe's"
    )
    p.add_argument(
        "--recipe", default=d.recipe, help="auto (the dataset's shipped recipe), none, NAME or PATH"
    )
    p.add_argument("--workers", default=d.workers, help="N or MIN:MAX")
    p.add_argument(
        "--warmup-epochs",
        type=int,
        default=d.warmup_epochs,
        help="InfoNCE-only epochs first; None: the recipe's",
    )
    p.add_argument("--output-size", type=int, default=d.output_size, help="augment.output_size")
    p.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help="kNN/NEMD every N epochs of each run (its curve); None: the recipe's",
    )
    p.add_argument("--config", default=None, help="YAML/JSON of further TrainConfig settings")
    p.add_argument("--ablation", action="store_true", help="add " + ", ".join(ABLATION))
    p.add_argument(
        "--ablation-seeds",
        nargs="+",
        type=int,
        default=None,
        help="seeds of the variants only --ablation adds (default: --seeds)",
    )
    p.add_argument("--out", default=None, help="output folder; None: runs/compare-DATASET")
    p.add_argument(
        "--max-eval-samples", type=int, default=None, help="rows per split in eval; None: all"
    )
    p.add_argument("--no-plots", action="store_true", help="no per-run PNGs")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        evaluation = dataclasses.replace(
            EvalConfig(), max_samples=args.max_eval_samples, plots=not args.no_plots
        )
        config = CompareConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            methods=tuple(args.methods),
            seeds=tuple(args.seeds),
            epochs=args.epochs,
            backbone=args.backbone,
            batch_size=args.batch_size,
            workers=args.workers,
            warmup_epochs=args.warmup_epochs,
            output_size=args.output_size,
            eval_every=args.eval_every,
            recipe=args.recipe,
            base_config=args.config,
            ablation=args.ablation,
            ablation_seeds=None if args.ablation_seeds is None else tuple(args.ablation_seeds),
            out=args.out or f"runs/compare-{args.dataset.replace(':', '_').replace('/', '_')}",
            evaluation=evaluation,
        )
        from pauc_ray.data import resolve_dataset
        from pauc_ray.train.driver import init_ray

        for variant in config.variants:  # every setting checked before anything runs
            train_config_for(config, variant, config.seeds[0])
        first = train_config_for(config, config.variants[0], config.seeds[0])
        resolve_dataset(first.dataset, first.data_dir, first.seed)
        init_ray(verbose=False)
        rows = run_comparison(config)
    except (ValueError, DatasetError, ExportError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(Path(config.out, "table.md").read_text())
    print(f"wrote {config.out}/table.md, results.json, figure.png")
    return 0 if all(r.get("error") is None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
