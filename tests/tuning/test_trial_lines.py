"""The sweep's one line per trial shows the values the trial trained with."""

from __future__ import annotations

from types import SimpleNamespace

from tuning.console import TrialLines
from tuning.objective import OBJECTIVE_KEY, parse_objective
from tuning.search_space import load_space


def trial(config: dict, knn: float = 81.5, epoch: int = 3):
    return SimpleNamespace(
        trial_id="abc_00001", config=config, last_result={OBJECTIVE_KEY: knn, "epoch": epoch}
    )


def test_a_weight_whose_zero_draw_came_up_is_shown_as_zero_and_fixed_values_are_left_out():
    space = load_space(None, ["lr=0.06", "t=2", "s=2"])
    lines = TrialLines(parse_objective("knn_top1"), 24, space)
    sampled = {"alpha": 0.81, "alpha_zero_draw": 0.5, "beta": 0.013, "beta_zero_draw": 0.01}
    sampled |= {"gamma": 0.27, "gamma_zero_draw": 0.9, "tau": 0.2, "rho": 0.35}
    lines.done = 2
    line = lines.line(trial(sampled), "finished")
    assert line.startswith("trial 2/24 abc_00001 finished: knn_top1 (max) 81.5000 after 3 epoch")
    assert "alpha=0.81," in line and "beta=0," in line and "gamma=0.27," in line
    assert "lr=" not in line and "zero_draw" not in line and " t=" not in line
    # what results.csv records for the same trial
    assert space.resolve(sampled)["beta"] == 0.0


def test_a_config_the_space_cannot_resolve_is_shown_as_tune_holds_it():
    space = load_space(None)
    lines = TrialLines(parse_objective("knn_top1"), 4, space)
    line = lines.line(trial({"alpha": 0.5, "alpha_zero_draw": 0.9}), "FAILED")
    assert "FAILED" in line and "alpha=0.5" in line and "zero_draw" not in line
