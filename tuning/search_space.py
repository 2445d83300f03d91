"""The sweep's search space: which of PAUC's hyperparameters vary, and how, read from YAML.

A space file maps parameter names to distributions (``tuning/default_space.yaml`` ships)::

    alpha: {distribution: loguniform, low: 0.01, high: 10, zero_prob: 0.2}
    tau:   {distribution: loguniform, low: 0.05, high: 0.5}
    s:     {distribution: choice, values: [1, 2]}
    lr:    0.03                           # a bare value is fixed

Names are the paper's symbols (``alpha``, ``beta``, ``gamma`` of Eq. 7, ``tau`` of Eq. 1,
``s`` of Eq. 4, ``t`` of Eq. 5, ``rho`` of p-corr, ``lr``) or the :class:`TrainConfig` path
they set (``loss.alpha``, ``loss.temperature``, ...). Distributions: ``loguniform``,
``uniform`` (``low`` < ``high``), ``choice`` (``values``), ``fixed`` (``value``).

``zero_prob: P`` (loss weights only) makes a weight exactly 0 with probability P, so ablations
(PCL = all three weights 0) are part of the same sweep. It is a second, uniform parameter
``NAME_zero_draw`` in [0, 1): the weight is 0 when the draw is below P. Unlike a
``tune.sample_from`` this is an ordinary Tune domain, so Optuna's TPE can learn it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pauc_ray.config import PROTOTYPE_TERMS

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "fixed")
ZERO_DRAW_SUFFIX = "_zero_draw"
DEFAULT_SPACE_FILE = Path(__file__).with_name("default_space.yaml")


@dataclass(frozen=True)
class Tunable:
    """One hyperparameter the sweep may vary: where it lives in TrainConfig and its domain."""

    path: tuple[str, ...]
    kind: str  # "weight" (>= 0, may be exactly 0), "temperature" or "positive" (> 0)
    description: str


# The prototype terms' weights and parameters come from the one table of terms.
PROTOTYPE_TUNABLES: dict[str, Tunable] = {
    **{
        term.weight: Tunable(
            ("loss", term.weight), "weight", f"weight of {term.label} ({term.equation})"
        )
        for term in PROTOTYPE_TERMS
    },
    **{
        param.symbol: Tunable(("loss", param.field), param.kind, param.description)
        for term in PROTOTYPE_TERMS
        for param in term.params
    },
}
TUNABLES: dict[str, Tunable] = {
    **PROTOTYPE_TUNABLES,
    "tau": Tunable(("loss", "temperature"), "temperature", "InfoNCE temperature (Eq. 1)"),
    "lr": Tunable(("lr",), "positive", "SGD learning rate"),
}
ALIASES = {".".join(t.path): name for name, t in TUNABLES.items()}


class SearchSpaceError(ValueError):
    """A search space file or override that cannot be used; the message names the input."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter's distribution (validated on construction)."""

    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] = ()
    zero_prob: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        if self.distribution == "fixed":
            return {"distribution": "fixed", "value": self.values[0]}
        if self.distribution == "choice":
            return {"distribution": "choice", "values": list(self.values)}
        out: dict[str, Any] = {"distribution": self.distribution, "low": self.low}
        out["high"] = self.high
        if self.zero_prob:
            out["zero_prob"] = self.zero_prob
        return out

    @property
    def log_scale(self) -> bool:
        return self.distribution == "loguniform"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SearchSpaceError(f"{where} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise SearchSpaceError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SearchSpaceError(f"{where} must be finite, got {value!r}")
    return number


def _check_value(name: str, value: float, where: str) -> None:
    kind = TUNABLES[name].kind
    if kind == "weight" and value < 0:
        raise SearchSpaceError(f"{where}: {name} is a loss weight and must be >= 0, got {value}")
    if kind == "temperature" and value <= 0:
        raise SearchSpaceError(
            f"{where}: {name} is a temperature and must be > 0 (a negative or zero "
            f"temperature is meaningless), got {value}"
        )
    if kind == "positive" and value <= 0:
        raise SearchSpaceError(f"{where}: {name} must be > 0, got {value}")


def canonical_name(key: Any, source: str) -> str:
    name = ALIASES.get(str(key), str(key))
    if name not in TUNABLES:
        known = ", ".join(f"{n} ({'.'.join(t.path)})" for n, t in TUNABLES.items())
        raise SearchSpaceError(f"{source}: unknown parameter {key!r}; known: {known}")
    return name


def parse_param(name: str, spec: Any, source: str) -> ParamSpec:
    """Validates one parameter's entry (mapping, bare number = fixed, list = choice)."""
    where = f"{source}: {name}"
    if isinstance(spec, (int, float, str)) and not isinstance(spec, bool):
        spec = {"distribution": "fixed", "value": spec}
    elif isinstance(spec, list):
        spec = {"distribution": "choice", "values": spec}
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(
            f"{where}: expected a mapping like {{distribution: loguniform, low: 0.01, "
            f"high: 1}}, a list (choice) or a number (fixed), got {spec!r}"
        )
    distribution = spec.get("distribution")
    if distribution not in DISTRIBUTIONS:
        raise SearchSpaceError(
            f"{where}: distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}"
        )
    allowed = {
        "loguniform": {"low", "high", "zero_prob"},
        "uniform": {"low", "high", "zero_prob"},
        "choice": {"values"},
        "fixed": {"value"},
    }[distribution] | {"distribution"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise SearchSpaceError(
            f"{where}: unknown key(s) {extra} for a {distribution} distribution; "
            f"allowed: {sorted(allowed)}"
        )
    if distribution == "fixed":
        if "value" not in spec:
            raise SearchSpaceError(f"{where}: a fixed parameter needs 'value'")
        value = _number(spec["value"], f"{where}.value")
        _check_value(name, value, where)
        return ParamSpec(name, "fixed", values=(value,))
    if distribution == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(f"{where}: a choice needs a non-empty list 'values'")
        numbers = tuple(_number(v, f"{where}.values[]") for v in values)
        for value in numbers:
            _check_value(name, value, where)
        return ParamSpec(name, "choice", values=numbers)
    for key in ("low", "high"):
        if key not in spec:
            raise SearchSpaceError(f"{where}: a {distribution} distribution needs 'low' and 'high'")
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    if low > high:
        raise SearchSpaceError(f"{where}: low > high ({low} > {high}); swap them")
    if low == high:
        raise SearchSpaceError(
            f"{where}: low == high ({low}); use a fixed value ({name}: {low}) instead"
        )
    _check_value(name, low, where)
    if distribution == "loguniform" and low <= 0:
        raise SearchSpaceError(
            f"{where}: loguniform needs low > 0, got {low} (for an exactly-0 weight use zero_prob)"
        )
    zero_prob = _number(spec.get("zero_prob", 0.0), f"{where}.zero_prob")
    if zero_prob and TUNABLES[name].kind != "weight":
        raise SearchSpaceError(
            f"{where}: zero_prob is only for the loss weights alpha, beta, gamma "
            f"({name} = 0 is not a valid setting)"
        )
    if not 0 <= zero_prob < 1:
        raise SearchSpaceError(f"{where}: zero_prob must be in [0, 1), got {zero_prob}")
    return ParamSpec(name, distribution, low=low, high=high, zero_prob=zero_prob)


@dataclass(frozen=True)
class SearchSpace:
    """Validated parameters, in file order; the bridge between YAML, Tune and TrainConfig."""

    params: tuple[ParamSpec, ...]
    source: str = "<dict>"

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<dict>") -> SearchSpace:
        if not isinstance(data, Mapping) or not data:
            raise SearchSpaceError(
                f"{source}: expected a mapping of parameter name -> distribution, got {data!r}"
            )
        params: dict[str, ParamSpec] = {}
        for key, spec in data.items():
            name = canonical_name(key, source)
            if name in params:
                raise SearchSpaceError(f"{source}: parameter {name} is given twice ({key!r})")
            params[name] = parse_param(name, spec, source)
        return cls(tuple(params.values()), source)

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        path = Path(path)
        if not path.is_file():
            raise SearchSpaceError(f"search space {path}: no such file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SearchSpaceError(f"search space {path}: not valid YAML ({exc})") from None
        return cls.from_mapping(data, f"search space {path}")

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "--param") -> SearchSpace:
        """Replaces or adds parameters (``--param NAME=SPEC`` on the command line)."""
        params = {p.name: p for p in self.params}
        for key, spec in overrides.items():
            name = canonical_name(key, source)
            params[name] = parse_param(name, spec, source)
        return SearchSpace(tuple(params.values()), self.source)

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def get(self, name: str) -> ParamSpec:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def tune_space(self) -> dict[str, Any]:
        """Tune's ``param_space``: one domain per varying parameter (+ its zero draw). Fixed
        parameters stay out of it (searchers need not see constants); :meth:`resolve` adds
        them."""
        from ray import tune

        space: dict[str, Any] = {}
        for p in self.params:
            if p.distribution == "loguniform":
                space[p.name] = tune.loguniform(p.low, p.high)
            elif p.distribution == "uniform":
                space[p.name] = tune.uniform(p.low, p.high)
            elif p.distribution == "choice":
                space[p.name] = tune.choice(list(p.values))
            if p.zero_prob:
                space[p.name + ZERO_DRAW_SUFFIX] = tune.uniform(0.0, 1.0)
        return space

    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, float]:
        """The values a trial trains with, from what Tune sampled."""
        values: dict[str, float] = {}
        for p in self.params:
            if p.distribution == "fixed":
                values[p.name] = p.values[0]
                continue
            if p.name not in sampled:
                raise KeyError(f"trial config has no value for {p.name}: {dict(sampled)}")
            value = float(sampled[p.name])
            draw = sampled.get(p.name + ZERO_DRAW_SUFFIX)
            if p.zero_prob and draw is not None and float(draw) < p.zero_prob:
                value = 0.0
            values[p.name] = value
        return values

    def point_for(self, values: Mapping[str, float]) -> dict[str, Any]:
        """A Tune point (for ``points_to_evaluate``) that resolves to ``values``; a zero weight
        gets a zero draw (only when it can be drawn), others a draw that never zeroes."""
        point: dict[str, Any] = {}
        for p in self.params:
            if p.distribution == "fixed":
                continue
            value = float(values[p.name])
            if p.distribution == "choice" and value not in p.values:
                value = min(p.values, key=lambda v, target=value: abs(v - target))
            point[p.name] = value
            if p.zero_prob:
                point[p.name + ZERO_DRAW_SUFFIX] = 0.0 if value == 0 else 1.0 - 1e-9
        return point


def config_values(config: Any) -> dict[str, float]:
    """The current value of every tunable in a :class:`TrainConfig`."""
    out = {}
    for name, tunable in TUNABLES.items():
        value: Any = config
        for part in tunable.path:
            value = getattr(value, part)
        out[name] = float(value)
    return out


def config_overrides(values: Mapping[str, float]) -> dict[str, Any]:
    """Nested TrainConfig settings (for :func:`pauc_ray.train.config.merge`)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = TUNABLES[name].path
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def parse_param_flag(text: str) -> tuple[str, Any]:
    """``NAME=SPEC`` of ``--param``: ``0.5`` (fixed), ``loguniform:LOW:HIGH[:zero=P]``,
    ``uniform:LOW:HIGH[:zero=P]``, ``choice:A,B,...``."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise SearchSpaceError(
            f"--param {text!r}: expected NAME=SPEC, e.g. alpha=loguniform:0.1:10"
        )
    head, _, rest = spec.partition(":")
    if head in ("loguniform", "uniform"):
        parts = rest.split(":")
        if len(parts) not in (2, 3):
            raise SearchSpaceError(f"--param {text!r}: expected {head}:LOW:HIGH[:zero=P]")
        out: dict[str, Any] = {"distribution": head, "low": parts[0], "high": parts[1]}
        if len(parts) == 3:
            key, _, value = parts[2].partition("=")
            if key != "zero":
                raise SearchSpaceError(f"--param {text!r}: the third field must be zero=P")
            out["zero_prob"] = value
        return name, out
    if head == "choice":
        return name, {"distribution": "choice", "values": [v for v in rest.split(",") if v]}
    if head in ("fixed",):
        return name, {"distribution": "fixed", "value": rest}
    return name, {"distribution": "fixed", "value": spec}


def load_space(
    path: str | Path | None, param_flags: list[str] | tuple[str, ...] = ()
) -> SearchSpace:
    """The space file (default: ``tuning/default_space.yaml``), then ``--param`` overrides."""
    space = SearchSpace.from_file(path or DEFAULT_SPACE_FILE)
    if param_flags:
        space = space.with_overrides(dict(parse_param_flag(f) for f in param_flags))
    return space
