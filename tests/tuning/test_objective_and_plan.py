"""The objective (one metric or a weighted mix) and the concurrency plan."""

from __future__ import annotations

import pytest

from tuning.objective import Objective, parse_objective
from tuning.plan import TrialPlan, plan_trials


def test_single_metrics_take_their_natural_direction():
    assert parse_objective("knn_top1") == Objective((("knn_top1", 1.0),), "max")
    assert parse_objective("nemd").mode == "min"
    assert parse_objective("nemd", "max").mode == "max"
    assert parse_objective("knn_top1").value({"knn_top1": 91.5, "nemd": 1.0}) == 91.5


def test_weighted_mix():
    objective = parse_objective("knn_top1=1, nemd=-20")
    assert objective.mode == "max"
    assert objective.value({"knn_top1": 90.0, "nemd": 0.5}) == pytest.approx(80.0)
    assert objective.better(81.0, 80.0) and not parse_objective("nemd").better(2.0, 1.0)
    assert Objective.from_dict(objective.to_dict()) == objective
    assert "-20*nemd" in objective.describe()


@pytest.mark.parametrize(
    ("metric", "message"),
    [("accuracy", "expected one of"), ("knn_top1=x", "NAME=WEIGHT"), ("loss=1", "unknown")],
)
def test_bad_metrics(metric, message):
    with pytest.raises(ValueError, match=message):
        parse_objective(metric)


def test_missing_metric_says_why():
    with pytest.raises(ValueError, match=r"needs 'knn_top1'.*epoch 3"):
        parse_objective("knn_top1").value({"epoch": 3, "nemd": 1.0})


def test_two_core_machine_runs_one_trial_at_a_time():
    # init_ray registers 4 logical CPUs on a 2-core machine; the plan looks at the cores
    for workers in (None, "1", "2", "1:2"):
        plan = plan_trials({"CPU": 4.0}, workers=workers, cores=2)
        assert plan.concurrency == 1 and not plan.use_gpu
        assert 1 <= plan.max_workers <= 2 and plan.cpus_per_worker < 1
    assert plan_trials({"CPU": 2.0}).workers == "2"
    assert plan_trials({"CPU": 1.0}).workers == "1"


def test_cpu_cluster_runs_several_trials():
    plan = plan_trials({"CPU": 32.0}, workers="2")
    assert plan.concurrency == 10 and plan.trial_resources == {"CPU": 0.01}
    assert plan_trials({"CPU": 32.0}, max_concurrent=3).concurrency == 3


def test_gpu_cluster_runs_one_trial_per_gpu_group():
    plan = plan_trials({"CPU": 64.0, "GPU": 8.0})
    assert plan.use_gpu and plan.workers == "1" and plan.concurrency == 8
    plan = plan_trials({"CPU": 64.0, "GPU": 8.0}, workers="2:4")
    assert plan.concurrency == 2 and plan.max_workers == 4
    # CPUs cap it too: each trial needs its workers' CPUs plus one for Ray Data
    assert plan_trials({"CPU": 6.0, "GPU": 8.0}, workers="2").concurrency == 2
    with pytest.raises(ValueError, match="needs 4 GPUs"):
        plan_trials({"CPU": 64.0, "GPU": 2.0}, workers="4")
    with pytest.raises(ValueError, match="no GPU"):
        plan_trials({"CPU": 8.0}, use_gpu=True)
    assert not plan_trials({"CPU": 64.0, "GPU": 8.0}, use_gpu=False).use_gpu


def test_plan_round_trip_and_bad_workers():
    plan = plan_trials({"CPU": 16.0})
    assert TrialPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError, match="--workers"):
        plan_trials({"CPU": 16.0}, workers="0")


def test_asha_grace_period_starts_after_the_prototype_warm_up():
    import dataclasses

    from pauc_ray.train.config import TrainConfig
    from tuning.search_space import load_space
    from tuning.sweep import SweepError, grace_period_for

    config = TrainConfig(epochs=12, method="pauc")
    config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, warmup_epochs=3))
    swept = load_space(None, [])  # the default space varies alpha, beta, gamma, ...
    assert grace_period_for(config, swept, None) == 5  # not 12 // 4 = 3: the terms start at 4
    assert grace_period_for(config, swept, 4) == 4
    with pytest.raises(SweepError, match="before the prototype terms"):
        grace_period_for(config, swept, 3)
    # sweeping the InfoNCE side only: the warm-up does not matter
    fixed = load_space(None, [f"{n}=0.5" for n in ("alpha", "beta", "gamma", "s", "t", "rho")])
    assert grace_period_for(config, fixed, None) == 3 and grace_period_for(config, fixed, 1) == 1
    short = dataclasses.replace(config, epochs=4)
    assert grace_period_for(short, swept, None) == 4  # never past the last epoch
