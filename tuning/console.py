"""What a sweep prints: one line per finished (or failed) trial, instead of Tune's tables."""

from __future__ import annotations

from typing import Any

from ray import tune

from tuning.objective import OBJECTIVE_KEY, Objective
from tuning.search_space import ZERO_DRAW_SUFFIX


class TrialLines(tune.Callback):
    """A Tune callback (driver side): ``trial 3/24 abc123 finished: <objective> 85.1234 after 6
    epoch(s) (alpha=0.5, ...)``. Tune's own progress tables are off (``verbose=0``); its
    loggers (``progress.csv``, ``result.json``, TensorBoard events per trial) still write."""

    def __init__(self, objective: Objective, num_samples: int) -> None:
        self.objective = objective
        self.num_samples = num_samples
        self.done = 0

    def line(self, trial: Any, status: str) -> str:
        result = trial.last_result or {}
        value = result.get(OBJECTIVE_KEY)
        shown = "-" if value is None else f"{value:.4f}"
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted((trial.config or {}).items())
            if not k.endswith(ZERO_DRAW_SUFFIX)
        )
        return (
            f"trial {self.done}/{self.num_samples} {trial.trial_id} {status}: "
            f"{self.objective.describe()} {shown} after {result.get('epoch', 0)} epoch(s)"
            + (f" ({params})" if params else "")
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        print(self.line(trial, "finished"), flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        print(self.line(trial, "FAILED"), flush=True)
