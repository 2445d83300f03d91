"""What a sweep optimises: one metric of the run's evaluation, or a weighted sum of several.

The metrics come from the per-epoch evaluation of :mod:`pauc_ray.train.evaluate_run` (rank 0,
every epoch in a trial): ``knn_top1`` / ``knn_top5`` (weighted kNN accuracy of the held-out
split in %, higher is better) and ``nemd`` / ``nemd_nn`` (Eq. 3 on the train embedding; the
paper reads a *lower* NEMD as fewer voids between prototypes, so ``min`` is their default
mode; note that a collapsed embedding also has NEMD near 0, README "blob experiment").

``--metric knn_top1`` (default), ``--metric nemd``, or a mix ``--metric knn_top1=1,nemd=-20``
(objective = sum of weight x metric, maximised unless ``--mode min``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METRICS = {"knn_top1": "max", "knn_top5": "max", "nemd": "min", "nemd_nn": "min"}
OBJECTIVE_KEY = "objective"  # the name Tune, ASHA and the searcher see


@dataclass(frozen=True)
class Objective:
    """``sum(weight * metric)`` over ``weights``, optimised in ``mode`` (``max`` or ``min``)."""

    weights: tuple[tuple[str, float], ...]
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"--mode must be max or min, got {self.mode!r}")
        if not self.weights:
            raise ValueError("the objective needs at least one metric")
        for name, _ in self.weights:
            if name not in METRICS:
                raise ValueError(f"--metric: unknown metric {name!r}; known: {sorted(METRICS)}")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    def describe(self) -> str:
        if len(self.weights) == 1 and self.weights[0][1] == 1.0:
            return f"{self.weights[0][0]} ({self.mode})"
        terms = " + ".join(f"{w:g}*{name}" for name, w in self.weights)
        return f"{terms} ({self.mode})"

    def value(self, metrics: Mapping[str, Any]) -> float:
        """The objective of one epoch's metrics; a missing metric is an error that says why."""
        total = 0.0
        for name, weight in self.weights:
            value = metrics.get(name)
            if value is None:
                raise ValueError(
                    f"the objective needs {name!r}, which epoch {metrics.get('epoch')} did "
                    "not report (kNN needs a labelled test split; NEMD needs at least twice "
                    "num_clusters[0] train samples)"
                )
            total += weight * float(value)
        return total

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def to_dict(self) -> dict[str, Any]:
        return {"weights": [list(w) for w in self.weights], "mode": self.mode}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        return cls(tuple((str(n), float(w)) for n, w in data["weights"]), str(data["mode"]))


def parse_objective(metric: str, mode: str | None = None) -> Objective:
    """``knn_top1`` / ``nemd`` / ... or ``NAME=W,NAME=W`` (weighted mix); ``mode`` defaults
    to the metric's natural direction (max for a mix)."""
    text = metric.strip()
    if "=" not in text and "," not in text:
        if text not in METRICS:
            raise ValueError(
                f"--metric {metric!r}: expected one of {sorted(METRICS)} or a weighted mix "
                "like knn_top1=1,nemd=-20"
            )
        return Objective(((text, 1.0),), mode or METRICS[text])
    weights = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, weight = part.partition("=")
        try:
            if not sep:
                raise ValueError
            weights.append((name.strip(), float(weight)))
        except ValueError:
            raise ValueError(
                f"--metric {metric!r}: each part of a mix must be NAME=WEIGHT, got {part!r}"
            ) from None
    return Objective(tuple(weights), mode or "max")
