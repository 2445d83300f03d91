"""What a sweep prints: one line per finished (or failed) trial, instead of Tune's tables."""

from __future__ import annotations

from typing import Any

from ray import tune

from tuning.objective import OBJECTIVE_KEY, Objective
from tuning.search_space import ZERO_DRAW_SUFFIX, SearchSpace


class TrialLines(tune.Callback):
    """A Tune callback (driver side): ``trial 3/24 abc123 finished: <objective> 85.1234 after 6
    epoch(s) (alpha=0.5, ...)``. Tune's own progress tables are off (``verbose=0``); its
    loggers (``progress.csv``, ``result.json``, TensorBoard events per trial) still write.

    The values shown are the ones the trial trained with (``space.resolve``: a weight whose
    zero draw came up is 0, not the number Tune sampled beside the draw), for the parameters
    the space varies."""

    def __init__(self, objective: Objective, num_samples: int, space: SearchSpace) -> None:
        self.objective = objective
        self.num_samples = num_samples
        self.space = space
        self.done = 0

    def trained_values(self, config: dict[str, Any]) -> dict[str, Any]:
        varying = {p.name for p in self.space.params if p.distribution != "fixed"}
        try:
            values = self.space.resolve(config)
        except KeyError:  # not a config of this space: show what Tune holds
            values = {k: v for k, v in config.items() if not k.endswith(ZERO_DRAW_SUFFIX)}
        return {k: v for k, v in values.items() if k in varying or k not in self.space.names}

    def line(self, trial: Any, status: str) -> str:
        result = trial.last_result or {}
        value = result.get(OBJECTIVE_KEY)
        shown = "-" if value is None else f"{value:.4f}"
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(self.trained_values(trial.config or {}).items())
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
