"""The search space file: parsing, validation messages, and the bridge to Tune/TrainConfig."""

from __future__ import annotations

import numpy as np
import pytest
from ray import tune

from pauc_ray.config_io import from_dict, merge
from pauc_ray.train.config import TrainConfig
from tuning.search_space import (
    DEFAULT_SPACE_FILE,
    TUNABLES,
    SearchSpace,
    SearchSpaceError,
    config_overrides,
    config_values,
    load_space,
    parse_param_flag,
)


def write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_default_space_covers_every_tunable_and_resolves_to_valid_configs():
    space = load_space(None)
    assert set(space.names) == set(TUNABLES)
    assert {p.name for p in space.params if p.zero_prob} == {"alpha", "beta", "gamma"}
    domains = space.tune_space()
    rng = np.random.default_rng(0)
    for _ in range(50):
        sampled = {k: d.sample(random_state=rng) for k, d in domains.items()}
        values = space.resolve(sampled)
        config = from_dict(TrainConfig, merge(TrainConfig().to_dict(), config_overrides(values)))
        assert config.loss.temperature == pytest.approx(values["tau"])
        assert config.loss.corr_temperature == pytest.approx(values["rho"])
        assert config.lr == pytest.approx(values["lr"])


def test_zero_prob_gives_exact_zeros_at_about_that_rate():
    space = SearchSpace.from_mapping(
        {"alpha": {"distribution": "loguniform", "low": 0.1, "high": 10, "zero_prob": 0.3}}
    )
    domains = space.tune_space()
    assert set(domains) == {"alpha", "alpha_zero_draw"}
    rng = np.random.default_rng(1)
    draws = [
        space.resolve({k: d.sample(random_state=rng) for k, d in domains.items()})["alpha"]
        for _ in range(2000)
    ]
    zeros = sum(v == 0.0 for v in draws) / len(draws)
    assert 0.26 < zeros < 0.34
    assert all(v == 0.0 or 0.1 <= v <= 10 for v in draws)


def test_aliases_fixed_choice_and_defaults_point(tmp_path):
    path = write(
        tmp_path,
        "loss.alpha: {distribution: loguniform, low: 0.1, high: 10, zero_prob: 0.5}\n"
        "s: [1, 2]\nlr: 0.05\n",
    )
    space = SearchSpace.from_file(path)
    assert space.names == ("alpha", "s", "lr")
    assert set(space.tune_space()) == {"alpha", "alpha_zero_draw", "s"}  # fixed lr stays out
    assert isinstance(space.tune_space()["s"], tune.search.sample.Categorical)
    point = space.point_for(config_values(TrainConfig()))
    assert space.resolve(point) == {"alpha": 1.0, "s": 2.0, "lr": 0.05}
    zero = space.point_for({"alpha": 0.0, "s": 1.0})
    assert space.resolve(zero)["alpha"] == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alhpa: {distribution: uniform, low: 0, high: 1}\n", "unknown parameter 'alhpa'"),
        ("beta: {distribution: uniform, low: 2, high: 1}\n", r"low > high \(2.0 > 1.0\)"),
        ("tau: {distribution: uniform, low: -0.1, high: 0.5}\n", "temperature and must be > 0"),
        ("rho: {distribution: fixed, value: -1}\n", "rho is a temperature"),
        ("tau: {distribution: normal, low: 0.1, high: 0.5}\n", "distribution must be one of"),
        ("alpha: {distribution: uniform, low: -1, high: 1}\n", "alpha is a loss weight"),
        ("alpha: {distribution: loguniform, low: 0, high: 1}\n", "use zero_prob"),
        ("tau: {distribution: loguniform, low: 0.1, high: 1, zero_prob: 0.2}\n", "only for"),
        ("gamma: {distribution: uniform, low: 0, high: 1, zero_prob: 1.5}\n", r"\[0, 1\)"),
        ("lr: {distribution: uniform, low: 0.1}\n", "needs 'low' and 'high'"),
        ("lr: {distribution: uniform, low: 0.1, high: 0.1}\n", "low == high"),
        ("lr: {distribution: uniform, low: 0.1, hihg: 0.2}\n", "unknown key"),
        ("lr: {distribution: uniform, low: x, high: 0.2}\n", "lr.low must be a number"),
        ("s: {distribution: choice, values: []}\n", "non-empty list"),
        ("- alpha\n", "expected a mapping"),
        ("alpha: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_space_files_name_the_parameter_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SearchSpaceError, match=message) as info:
        SearchSpace.from_file(path)
    assert str(path) in str(info.value)


def test_missing_file_and_duplicate_names(tmp_path):
    with pytest.raises(SearchSpaceError, match="no such file"):
        SearchSpace.from_file(tmp_path / "nope.yaml")
    with pytest.raises(SearchSpaceError, match="given twice"):
        SearchSpace.from_file(write(tmp_path, "tau: 0.1\nloss.temperature: 0.2\n"))


def test_param_flags_override_the_file():
    space = load_space(
        DEFAULT_SPACE_FILE,
        ["alpha=0", "tau=loguniform:0.1:0.3", "beta=uniform:0:2:zero=0.5", "s=choice:1,2"],
    )
    assert space.get("alpha").to_dict() == {"distribution": "fixed", "value": 0.0}
    assert (space.get("tau").low, space.get("tau").high) == (0.1, 0.3)
    assert space.get("beta").zero_prob == 0.5
    assert space.get("s").values == (1.0, 2.0)
    with pytest.raises(SearchSpaceError, match="NAME=SPEC"):
        parse_param_flag("alpha")
    with pytest.raises(SearchSpaceError, match="temperature"):
        load_space(None, ["tau=-0.5"])
    with pytest.raises(SearchSpaceError, match="unknown parameter 'delta'"):
        load_space(None, ["delta=1"])


def test_round_trip_through_dict():
    space = load_space(None, ["s=choice:1,2", "lr=0.01"])
    assert SearchSpace.from_mapping(space.to_dict()).to_dict() == space.to_dict()
