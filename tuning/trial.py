"""One trial: the Tune function trainable that runs a Ray Train run with sampled settings.

This is Ray's Train/Tune interop pattern for Train V2 (STYLE.md): Tune sweeps a *driver
function* (:func:`run_trial`), which calls the same :func:`pauc_ray.train.driver.run_training`
as ``python -m pauc_ray.train``; that builds the TorchTrainer, whose every per-epoch
``ray.train.report`` is forwarded to Tune by :class:`ObjectiveReportCallback` (Ray's
``TuneReportCallback`` plus the sweep's ``objective``), so ASHA can stop a trial after any epoch
(the last epoch is reported once the run's files are written, see the callback).

A trial's run folder is ``OUT/trials/trial_<id>`` (a normal run folder: config, checkpoints,
history, export). When a restored sweep (``--resume``) restarts a trial whose folder has a
checkpoint, the run resumes from it instead of starting over.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.integration.ray_train import TuneReportCallback

from pauc_ray.config_io import from_dict, merge
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.run_files import RunFiles
from tuning.objective import OBJECTIVE_KEY, Objective
from tuning.plan import TrialPlan
from tuning.search_space import SearchSpace, config_overrides

logger = logging.getLogger(__name__)


class TrialFailedError(RuntimeError):
    """The trial's training run ended with an error (Tune records the trial as ERROR)."""


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs besides its sampled parameters (the same for all trials)."""

    base: dict[str, Any]  # TrainConfig.to_dict() with absolute paths
    space: SearchSpace
    objective: Objective
    plan: TrialPlan
    trials_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "space": self.space.to_dict(),
            "space_source": self.space.source,
            "objective": self.objective.to_dict(),
            "plan": self.plan.to_dict(),
            "trials_dir": self.trials_dir,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSettings:
        return cls(
            base=dict(data["base"]),
            space=SearchSpace.from_mapping(data["space"], data.get("space_source", "sweep.json")),
            objective=Objective.from_dict(data["objective"]),
            plan=TrialPlan.from_dict(data["plan"]),
            trials_dir=str(data["trials_dir"]),
        )


def tuned_config(base: Mapping[str, Any], values: Mapping[str, float]) -> dict[str, Any]:
    """``base`` (a TrainConfig dict) with the tuned values set in it."""
    return merge(base, config_overrides(values))


def trial_config(settings: TrialSettings, sampled: Mapping[str, Any], name: str) -> TrainConfig:
    """The TrainConfig of one trial: base + sampled values + what every trial needs (its own
    run folder, the plan's workers, an evaluation every epoch so the objective exists at every
    report ASHA looks at). A bad sampled value raises ValueError naming the setting."""
    data = tuned_config(settings.base, settings.space.resolve(sampled))
    data = merge(
        data,
        {
            "name": name,
            "storage": settings.trials_dir,
            "eval_every": 1,
            "workers": settings.plan.workers,
            "cpus_per_worker": settings.plan.cpus_per_worker,
            "use_gpu": settings.plan.use_gpu,
        },
    )
    return from_dict(TrainConfig, data)


class ObjectiveReportCallback(TuneReportCallback):
    """Ray's TuneReportCallback (rank 0's metrics to Tune) with the sweep's ``objective``
    added, so ASHA and the searcher see one number under one name.

    Every epoch but the last is forwarded as it is reported. The last one is held back and
    reported by :func:`run_trial` once the run has finished: a scheduler stops a trial at its
    final result (ASHA at ``max_t``), and stopping it there would kill the workers while rank 0
    still writes the run's export, ``history.json`` and the driver its ``summary.json``.
    """

    def __init__(self, objective: Objective, final_epoch: int):
        super().__init__()
        self._objective = objective
        self._final_epoch = final_epoch

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        rank0 = dict(metrics[0])
        if rank0.get("epoch") == self._final_epoch:
            return
        rank0[OBJECTIVE_KEY] = self._objective.value(rank0)
        super().after_report(run_context, [rank0, *metrics[1:]], checkpoint)


def final_metrics(run_dir: Path, objective: Objective) -> dict[str, Any] | None:
    """The finished run's last epoch (``history.json``, written with the export) + objective."""
    history_file = RunFiles(str(run_dir)).history
    if not history_file.is_file():
        return None
    history = json.loads(history_file.read_text())
    if not history:
        return None
    last = {k: v for k, v in history[-1].items() if isinstance(v, (int, float, bool)) or v is None}
    last[OBJECTIVE_KEY] = objective.value(last)
    return last


def run_trial(params: dict[str, Any], settings: TrialSettings) -> None:
    """Tune's function trainable (wrapped with ``tune.with_parameters``)."""
    from ray import tune

    from pauc_ray.checkpoint import find_latest_checkpoint
    from pauc_ray.train.driver import run_training

    name = f"trial_{tune.get_context().get_trial_id()}"
    config = trial_config(settings, params, name)
    run_dir = Path(settings.trials_dir) / name
    resume = str(run_dir) if find_latest_checkpoint(run_dir) is not None else None
    if resume:
        logger.info("trial %s resumes its run from %s", name, resume)
    callback = ObjectiveReportCallback(settings.objective, final_epoch=config.epochs)
    summary = run_training(config, resume=resume, callbacks=[callback])
    if summary.get("error"):
        raise TrialFailedError(f"training run {summary['run_dir']} failed: {summary['error']}")
    final = final_metrics(run_dir, settings.objective)
    if final is None or final.get("epoch") != config.epochs:
        raise TrialFailedError(
            f"training run {run_dir} finished without a history of its {config.epochs} epochs"
        )
    tune.report(final)
