"""results.csv, best.yaml and the plots, from hand-made trial records (no Ray)."""

from __future__ import annotations

import csv
import json

import pytest

from pauc_ray.train.config import TrainConfig, build_parser, config_from_args
from tuning.objective import parse_objective
from tuning.outputs import TrialRecord, best_row, build_rows, error_line, write_outputs
from tuning.search_space import SearchSpace, config_values

SPACE = SearchSpace.from_mapping(
    {
        "alpha": {"distribution": "loguniform", "low": 0.01, "high": 10, "zero_prob": 0.2},
        "tau": {"distribution": "loguniform", "low": 0.05, "high": 0.5},
        "lr": 0.05,
    }
)
BASE = TrainConfig(epochs=3, dataset="blobs", data_dir="/data").to_dict()


def history(*objectives):
    return [
        {"epoch": i + 1, "objective": v, "knn_top1": v, "nemd": 1.0 - 0.1 * i}
        for i, v in enumerate(objectives)
    ]


def records():
    defaults = SPACE.point_for(config_values(TrainConfig()))
    return [
        TrialRecord("t_00000", defaults, history(80.0, 85.0, 88.0)),
        TrialRecord("t_00001", {"alpha": 0.5, "alpha_zero_draw": 0.1, "tau": 0.1}, history(70.0)),
        TrialRecord(
            "t_00002", {"alpha": 2.0, "alpha_zero_draw": 0.9, "tau": 0.3}, history(82, 90, 91)
        ),
        TrialRecord(
            "t_00003",
            {"alpha": 1.0, "alpha_zero_draw": 0.9, "tau": -1.0},
            error="ray.exceptions.RayTaskError(ValueError): ray::run_trial()\n  File x\n"
            "ValueError: loss.temperature must be > 0, got -1.0",
        ),
        # a very good early score that ASHA then stopped: not preferred over complete runs
        TrialRecord("t_00004", {"alpha": 3.0, "alpha_zero_draw": 0.9, "tau": 0.2}, history(95.0)),
    ]


def test_rows_statuses_zero_weights_and_best():
    objective = parse_objective("knn_top1")
    rows = build_rows(
        records(), SPACE, objective, epochs=3, default_values=config_values(TrainConfig())
    )
    by_id = {r["trial_id"]: r for r in rows}
    assert [r["status"] for r in rows] == [
        "COMPLETED",
        "STOPPED_EARLY",
        "COMPLETED",
        "ERROR",
        "STOPPED_EARLY",
    ]
    assert by_id["t_00000"]["defaults"] and not by_id["t_00002"]["defaults"]
    assert by_id["t_00001"]["alpha"] == 0.0  # the draw fell under zero_prob
    assert by_id["t_00002"]["objective_best"] == 91 and by_id["t_00002"]["nemd_best"] == 0.8
    assert by_id["t_00003"]["error"] == "ValueError: loss.temperature must be > 0, got -1.0"
    assert best_row(rows, objective)["trial_id"] == "t_00002"
    assert best_row(rows, parse_objective("knn_top1", "min"))["trial_id"] == "t_00000"


def test_write_outputs_makes_a_best_yaml_the_training_cli_accepts(tmp_path):
    objective = parse_objective("knn_top1")
    rows = build_rows(
        records(), SPACE, objective, epochs=3, default_values=config_values(TrainConfig())
    )
    summary = write_outputs(tmp_path, rows, BASE, SPACE, objective)
    assert summary["best"]["trial_id"] == "t_00002"
    assert summary["improvement_over_defaults"] == pytest.approx(3.0)
    assert summary["by_status"] == {"COMPLETED": 2, "STOPPED_EARLY": 2, "ERROR": 1, "UNFINISHED": 0}
    config = config_from_args(build_parser().parse_args(["--config", str(tmp_path / "best.yaml")]))
    assert config.loss.alpha == 2.0 and config.loss.temperature == 0.3 and config.lr == 0.05
    assert config.name is None and config.epochs == 3 and config.data_dir == "/data"
    assert config.kmeans == TrainConfig().kmeans  # every other setting comes from the base
    assert (tmp_path / "best.yaml").read_text().startswith("# Best trial t_00002")
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 5 and table[3]["status"] == "ERROR" and "temperature" in table[3]["error"]
    assert {"alpha", "tau", "lr", "objective_final", "objective_best", "run_dir"} <= set(table[0])
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["objective_by_trial.png", "objective_vs_alpha.png", "objective_vs_tau.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert json.loads((tmp_path / "summary.json").read_text())["best_yaml"].endswith("best.yaml")


def test_no_usable_trial_writes_no_best_yaml(tmp_path):
    objective = parse_objective("knn_top1")
    rows = build_rows([records()[3]], SPACE, objective, epochs=3)
    summary = write_outputs(tmp_path, rows, BASE, SPACE, objective)
    assert summary["best"] is None and not (tmp_path / "best.yaml").exists()
    assert (tmp_path / "results.csv").exists()


def test_error_line_picks_the_cause():
    assert error_line(RuntimeError("boom")) == "boom"
    text = "Traceback (most recent call last):\n  File a\nKeyError: 'x'\n"
    assert error_line(text) == "KeyError: 'x'"
