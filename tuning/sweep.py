"""``python -m tuning.sweep``: Ray Tune over PAUC's loss weights, temperatures and lr.

Each trial is a full Ray Train run (:mod:`tuning.trial`) with values drawn from the search
space (:mod:`tuning.search_space`, default ``tuning/default_space.yaml``); every epoch its kNN
and NEMD reach Tune, ASHA (``time_attr="epoch"``) stops the weak ones early, and random search
(or Optuna's TPE, ``--search optuna``) proposes the next. The base config's own values run as
the first trial, so the sweep says how far the best beats the defaults. Concurrency comes
from the cluster's resources (:mod:`tuning.plan`). A trial that fails is recorded (status
ERROR, with its message) and the sweep goes on; an interrupted sweep continues with
``--resume --out DIR``. Outputs: :mod:`tuning.outputs`.

On a cluster: ``ray job submit --working-dir . -- python -m tuning.sweep ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pauc_ray.config_io import from_dict, load_config_file, merge
from pauc_ray.data import DatasetError
from pauc_ray.storage import resolve as resolve_location
from pauc_ray.train.config import TrainConfig, resolve_config
from pauc_ray.train.driver import init_ray
from tuning.objective import OBJECTIVE_KEY, Objective, parse_objective
from tuning.outputs import TrialRecord, build_rows, write_outputs
from tuning.plan import plan_trials
from tuning.search_space import (
    DEFAULT_SPACE_FILE,
    PROTOTYPE_TUNABLES,
    TUNABLES,
    SearchSpace,
    config_values,
    load_space,
)
from tuning.trial import TrialSettings, run_trial

logger = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
TUNE_DIR = "tune"  # Tune's experiment folder inside --out
TRIALS_DIR = "trials"  # the trials' run folders inside --out
PROTOTYPE_PARAMS = tuple(PROTOTYPE_TUNABLES)  # only method pauc uses them
OPTUNA_MISSING = (
    "--search optuna needs the optuna package, which is not installed in this environment. "
    "Install the extra (pip install -e '.[optuna]') or use --search random (the default)."
)


class SweepError(ValueError):
    """A sweep that cannot start as asked; the message says which input and why."""


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """How the sweep searches (saved in ``sweep.json`` so ``--resume`` needs only ``--out``)."""

    num_samples: int = 16
    search: str = "random"
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 2.0
    seed: int = 0
    defaults_trial: bool = True

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise SweepError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.search not in ("random", "optuna"):
            raise SweepError(f"--search must be random or optuna, got {self.search!r}")
        if self.scheduler not in ("asha", "fifo"):
            raise SweepError(f"--scheduler must be asha or fifo, got {self.scheduler!r}")
        if self.grace_period < 1 or self.reduction_factor <= 1:
            raise SweepError("--grace-period must be >= 1 and --reduction-factor > 1")


# -- CLI -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.sweep",
        description="Ray Tune sweep over PAUC's loss weights (alpha, beta, gamma), temperatures "
        "(tau, rho), t, s and the learning rate. Each trial is a Ray Train run; ASHA stops weak "
        "trials early.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default=None, help="output folder (default: sweeps/sweep-TIME)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted sweep in --out (its settings come from sweep.json)",
    )
    parser.add_argument(
        "--retry-errored",
        action="store_true",
        help="with --resume: run errored trials again from scratch",
    )
    space = parser.add_argument_group("search space")
    space.add_argument("--space", default=str(DEFAULT_SPACE_FILE), help="search space YAML")
    space.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="override one parameter: 0.5 (fixed), loguniform:LOW:HIGH[:zero=P], "
        "uniform:LOW:HIGH, choice:A,B (repeatable)",
    )
    base = parser.add_argument_group("every trial's training run")
    base.add_argument("--config", default=None, help="base TrainConfig YAML/JSON")
    base.add_argument(
        "--recipe",
        default="auto",
        help="recipe under --config (auto: the dataset's shipped one, none, NAME or PATH)",
    )
    base.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base setting, e.g. loss.warmup_epochs=1 or kmeans.num_clusters=10,20",
    )
    base.add_argument("--dataset", default=None, help="as in pauc_ray.train (default: digits)")
    base.add_argument("--data-dir", default=None, help="where datasets are prepared")
    base.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 10)")
    base.add_argument(
        "--workers", default=None, help="Ray Train workers per trial, N or MIN:MAX (planned)"
    )
    base.add_argument(
        "--cpus-per-worker", type=float, default=None, help="CPU slot per worker (planned)"
    )
    search = parser.add_argument_group("search")
    search.add_argument("--num-samples", type=int, default=16, help="trials")
    search.add_argument(
        "--metric",
        default="knn_top1",
        help="knn_top1, knn_top5, nemd, nemd_nn, or a weighted mix like knn_top1=1,nemd=-20",
    )
    search.add_argument(
        "--mode",
        choices=("max", "min"),
        default=None,
        help="default: max for kNN and mixes, min for NEMD",
    )
    search.add_argument("--search", choices=("random", "optuna"), default="random")
    search.add_argument("--scheduler", choices=("asha", "fifo"), default="asha")
    search.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="ASHA: epochs before a trial may stop (default: epochs/4, and at least "
        "loss.warmup_epochs + 2 when the prototype terms are swept)",
    )
    search.add_argument("--reduction-factor", type=float, default=2.0, help="ASHA")
    search.add_argument(
        "--max-concurrent", type=int, default=None, help="cap on trials at once (planned)"
    )
    search.add_argument("--seed", type=int, default=0, help="seed of the search")
    search.add_argument(
        "--no-defaults-trial",
        dest="defaults_trial",
        action="store_false",
        help="do not spend the first trial on the base config's own values",
    )
    return parser


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SweepError(f"--set {item!r}: expected KEY=VALUE, e.g. loss.warmup_epochs=1")
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _absolute_dataset(dataset: str) -> str:
    kind, sep, path = dataset.partition(":")
    if sep and kind in ("parquet", "imagefolder"):
        return f"{kind}:{Path(path).expanduser().resolve()}"
    return dataset


def base_config(args: argparse.Namespace) -> TrainConfig:
    """The dataset's recipe, the ``--config`` file, ``--set`` overrides, then the named flags
    (10 epochs per trial unless one of them sets it); paths made absolute (trials run in other
    processes, possibly in other working directories)."""
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    data = merge(data, _parse_set(args.set))
    flags = {"dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs}
    data = merge(data, {k: v for k, v in flags.items() if v is not None})
    data.setdefault("epochs", 10)
    config = resolve_config(data, getattr(args, "recipe", "auto"))
    return dataclasses.replace(
        config,
        dataset=_absolute_dataset(config.dataset),
        data_dir=str(Path(config.data_dir).expanduser().resolve()),
        storage=str(resolve_location(config.storage)),  # a path or a URI
        name=None,
    )


def check_sweep(config: TrainConfig, space: SearchSpace) -> None:
    varying = [p.name for p in space.params if p.distribution != "fixed"]
    prototype = [n for n in varying if n in PROTOTYPE_PARAMS]
    if prototype and config.method != "pauc":
        raise SweepError(
            f"the space varies {prototype}, which only method pauc uses; the base config has "
            f"method {config.method!r} (set method: pauc, or fix those parameters)"
        )
    if prototype and config.loss.warmup_epochs >= config.epochs:
        raise SweepError(
            f"loss.warmup_epochs ({config.loss.warmup_epochs}) >= epochs ({config.epochs}): the "
            f"prototype terms ({', '.join(prototype)}) would never start; lower it, e.g. "
            f"--set loss.warmup_epochs={max(1, config.epochs // 5)}"
        )


def grace_period_for(config: TrainConfig, space: SearchSpace, given: int | None) -> int:
    """ASHA's grace period: ``given``, else a quarter of the epochs; when the space varies the
    prototype terms' parameters, past their warm-up (``loss.warmup_epochs`` epochs of InfoNCE
    alone, where alpha, beta, gamma, t, s and rho change nothing): a trial stopped at a rung
    inside the warm-up would be judged on its temperature and learning rate alone."""
    varying = {p.name for p in space.params if p.distribution != "fixed"}
    prototype = sorted(varying & set(PROTOTYPE_PARAMS))
    warmup = config.loss.warmup_epochs if prototype else 0
    if given is None:  # at least two epochs with the terms on before the first rung
        return max(1, min(config.epochs, max(config.epochs // 4, warmup + 2)))
    if given <= warmup:
        raise SweepError(
            f"--grace-period {given} <= loss.warmup_epochs {warmup}: ASHA would stop trials "
            f"before the prototype terms ({', '.join(prototype)}) start; use at least "
            f"{warmup + 1}"
        )
    return given


def _check_dataset(config: TrainConfig, objective: Objective) -> None:
    """Prepares the dataset once, here, before trials would race to; checks it can score."""
    from pauc_ray.data import read_dataset_info, resolve_dataset

    directory = resolve_dataset(config.dataset, config.data_dir, config.seed)
    info = read_dataset_info(directory)
    if any(n.startswith("knn") for n in objective.metric_names) and not info.counts.get("test"):
        raise SweepError(
            f"--metric {objective.describe()} needs a held-out 'test' split; {directory} has "
            f"only {sorted(info.counts)}"
        )


# -- running ---------------------------------------------------------------------------------
def optuna_available() -> bool:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


def make_searcher(options: SweepOptions, points: list[dict[str, Any]], concurrency: int):
    """Optuna's TPE (limited to ``concurrency`` trials at once) or random search.

    The random search gets the limit itself: Tune ignores ``max_concurrent_trials`` (with only
    a warning) when ``search_alg`` is a BasicVariantGenerator instance, and every trial would
    start at once, each reserving only 0.01 CPU."""
    if options.search == "optuna":
        if not optuna_available():
            raise SweepError(OPTUNA_MISSING)
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(points_to_evaluate=points or None, seed=options.seed)
        return ConcurrencyLimiter(searcher, max_concurrent=concurrency)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(
        points_to_evaluate=points or None, max_concurrent=concurrency, random_state=options.seed
    )


def make_scheduler(options: SweepOptions, epochs: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if options.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        max_t=epochs,
        grace_period=min(options.grace_period, epochs),
        reduction_factor=options.reduction_factor,
    )


def _trainable(settings: TrialSettings):
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(run_trial, settings=settings), settings.plan.trial_resources
    )


def _tune_statuses(experiment: Path) -> dict[str, str]:
    """Tune's status of every trial (TERMINATED, ERROR, RUNNING, PENDING, ...)."""
    from ray import tune

    analysis = tune.ExperimentAnalysis(str(experiment))
    return {t.trial_id: t.status for t in analysis.trials}


def _records(grid, trials_dir: str, statuses: Mapping[str, str]) -> list[TrialRecord]:
    records = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = str(metrics.get("trial_id") or Path(result.path).name)
        frame = result.metrics_dataframe
        history = frame.to_dict("records") if frame is not None and len(frame) else []
        run_dir = Path(trials_dir) / f"trial_{trial_id}"
        records.append(
            TrialRecord(
                trial_id=trial_id,
                sampled=dict(result.config or {}),
                history=history,
                error=str(result.error) if result.error else None,
                run_dir=str(run_dir) if run_dir.exists() else None,
                finished=statuses.get(trial_id, "TERMINATED") in ("TERMINATED", "ERROR"),
            )
        )
    return sorted(records, key=lambda r: r.trial_id)


def _finish(grid, out: Path, settings: TrialSettings, options: SweepOptions) -> dict[str, Any]:
    config = from_dict(TrainConfig, settings.base)
    defaults = config_values(config) if options.defaults_trial else None
    statuses = _tune_statuses(out / TUNE_DIR)
    rows = build_rows(
        _records(grid, settings.trials_dir, statuses),
        settings.space,
        settings.objective,
        config.epochs,
        defaults,
    )
    summary = write_outputs(out, rows, settings.base, settings.space, settings.objective)
    finished = sum(status in ("TERMINATED", "ERROR") for status in statuses.values())
    summary["complete"] = finished >= options.num_samples
    _print_summary(summary, out)
    if not summary["complete"]:
        print(
            f"the sweep stopped after {finished} of {options.num_samples} trials; continue it "
            f"with: python -m tuning.sweep --resume --out {out}"
        )
    return summary


def run_sweep(
    out: Path,
    settings: TrialSettings,
    options: SweepOptions,
    *,
    stopper=None,
    extra_points: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Runs a new sweep into ``out``; returns the summary. ``stopper`` (a Tune stopper) and
    ``extra_points`` (sampled-parameter dicts tried after the defaults) are for tests and
    scripted use."""
    from ray import tune

    from tuning.console import TrialLines

    config = from_dict(TrainConfig, settings.base)
    points: list[dict[str, Any]] = []
    if options.defaults_trial:
        points.append(settings.space.point_for(config_values(config)))
    points += [dict(p) for p in extra_points]
    searcher = make_searcher(options, points, settings.plan.concurrency)
    out.mkdir(parents=True, exist_ok=True)
    (out / SWEEP_FILE).write_text(
        json.dumps(
            {"settings": settings.to_dict(), "options": dataclasses.asdict(options)}, indent=2
        )
    )
    tuner = tune.Tuner(
        _trainable(settings),
        param_space=settings.space.tune_space(),
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE_KEY,
            mode=settings.objective.mode,
            search_alg=searcher,
            scheduler=make_scheduler(options, config.epochs),
            num_samples=options.num_samples,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(out),
            # a failing trial is recorded and the sweep goes on (no retries: a bad setting
            # would fail again; Ray Train already restarts crashed workers within a trial)
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            stop=stopper,
            verbose=0,  # TrialLines says one line per finished trial instead of Tune's tables
            callbacks=[TrialLines(settings.objective, options.num_samples, settings.space)],
        ),
    )
    return _finish(tuner.fit(), out, settings, options)


def resume_sweep(out: Path, *, retry_errored: bool = False) -> dict[str, Any]:
    """Continues the sweep in ``out`` (unfinished trials go on, finished ones stay)."""
    from ray import tune

    saved = out / SWEEP_FILE
    experiment = out / TUNE_DIR
    if not saved.is_file():
        raise SweepError(f"--resume: {out} holds no {SWEEP_FILE} (not a sweep folder)")
    if not tune.Tuner.can_restore(str(experiment)):
        raise SweepError(f"--resume: {experiment} holds no Tune experiment state to resume")
    data = json.loads(saved.read_text())
    settings = TrialSettings.from_dict(data["settings"])
    options = SweepOptions(**data["options"])
    init_ray(verbose=False)
    tuner = tune.Tuner.restore(
        str(experiment),
        _trainable(settings),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=retry_errored,
    )
    return _finish(tuner.fit(), out, settings, options)


def _print_summary(summary: Mapping[str, Any], out: Path) -> None:
    print(f"sweep: {summary['trials']} trials {summary['by_status']}; {summary['objective']}")
    best, default = summary.get("best"), summary.get("defaults")
    names = [n for n in TUNABLES if best and n in best]
    if best:
        values = ", ".join(f"{n}={best[n]:.4g}" for n in names)
        print(f"best: trial {best['trial_id']} objective={best['objective_final']:.4f} ({values})")
    if default and default["objective_final"] is not None:
        print(f"defaults: trial {default['trial_id']} objective={default['objective_final']:.4f}")
    if "improvement_over_defaults" in summary:
        print(f"best - defaults = {summary['improvement_over_defaults']:+.4f}")
    print(f"results: {out / 'results.csv'}; best config: {summary.get('best_yaml')}")


def _local_cores() -> int | None:
    """The machine's cores when the cluster is this one machine (its logical CPU count may be
    inflated, see :func:`pauc_ray.train.driver.init_ray`); None on a multi-node cluster."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) != 1:
        return None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def prepare_sweep(args: argparse.Namespace) -> tuple[Path, TrialSettings, SweepOptions]:
    """Validates every input (before Ray starts where possible) and plans the trials."""
    import ray

    if args.search == "optuna" and not optuna_available():
        raise SweepError(OPTUNA_MISSING)
    space = load_space(args.space, args.param)
    objective = parse_objective(args.metric, args.mode)
    config = base_config(args)
    check_sweep(config, space)
    options = SweepOptions(
        num_samples=args.num_samples,
        search=args.search,
        scheduler=args.scheduler,
        grace_period=grace_period_for(config, space, args.grace_period),
        reduction_factor=args.reduction_factor,
        seed=args.seed,
        defaults_trial=args.defaults_trial,
    )
    out = Path(args.out or f"sweeps/sweep-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if (out / SWEEP_FILE).exists():
        raise SweepError(f"--out {out} already holds a sweep: add --resume, or choose another")
    init_ray(verbose=False)
    plan = plan_trials(
        ray.cluster_resources(),
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        max_concurrent=args.max_concurrent,
        use_gpu=config.use_gpu,
        cores=_local_cores(),
    )
    logger.info("plan: %s", plan.reason)
    _check_dataset(config, objective)
    settings = TrialSettings(
        base=config.to_dict(),
        space=space,
        objective=objective,
        plan=plan,
        trials_dir=str(out / TRIALS_DIR),
    )
    return out, settings, options


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("tuning").setLevel(logging.INFO)
    try:
        if args.resume:
            if not args.out:
                raise SweepError("--resume needs --out DIR (the sweep folder to continue)")
            summary = resume_sweep(Path(args.out).resolve(), retry_errored=args.retry_errored)
        else:
            out, settings, options = prepare_sweep(args)
            print(
                f"sweep into {out}: {settings.plan.reason}; objective {settings.objective.describe()}"
            )
            summary = run_sweep(out, settings, options)
    except (ValueError, DatasetError) as exc:  # SweepError, SearchSpaceError, config errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if summary.get("best") is not None and summary["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
