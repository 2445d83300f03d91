"""How many trials run at once, and with how many workers, from the cluster's resources.

Each trial is a Tune function trainable holding a token 0.01 CPU (``{"CPU": 0}`` is refused by
Tune, shared/RAY-NOTES.md); the real resources are its Ray Train workers, which the trial's
TorchTrainer requests itself. Tune cannot see those in advance, so the sweep caps
``max_concurrent_trials`` with this plan:

- **GPUs**: every worker takes one GPU; a trial is a group of ``max_workers`` GPUs and the
  sweep runs ``GPUs // group`` trials at once (also capped so that each trial's worker CPUs
  plus one CPU for Ray Data fit).
- **CPUs only**: every worker is one torch thread on a fractional CPU slot (fractions leave
  whole CPUs to Ray Data's read tasks, RAY-NOTES.md); a trial occupies about
  ``max_workers + 1`` cores (the workers, then Ray Data, evaluation and the clustering actor),
  and the sweep runs ``cores // (max_workers + 1)`` at once, at least one, where cores are the
  cluster's CPUs (on a one-node cluster, at most the machine's cores: ``init_ray`` registers 4
  logical CPUs on a 2-core machine). A 2-core machine thus runs one trial at a time, with 2
  workers by default or 1 with ``--workers 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pauc_ray.train.config import parse_worker_range

TRIAL_CPU = 0.01  # the trial actor's own reservation: it only waits on its TorchTrainer
CPU_WORKER_SLOT = 0.5  # per CPU worker: one thread, room left for Ray Data


@dataclass(frozen=True)
class TrialPlan:
    """What each trial asks for, and how many run at once."""

    concurrency: int
    workers: str
    cpus_per_worker: float
    use_gpu: bool
    reason: str

    @property
    def max_workers(self) -> int:
        return parse_worker_range(self.workers, "--workers")[1]

    @property
    def trial_resources(self) -> dict[str, float]:
        return {"CPU": TRIAL_CPU}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialPlan:
        return cls(**data)


def plan_trials(
    resources: Mapping[str, float],
    workers: str | None = None,
    cpus_per_worker: float | None = None,
    max_concurrent: int | None = None,
    use_gpu: bool | None = None,
    cores: int | None = None,
) -> TrialPlan:
    """The plan for a cluster with ``resources`` (``ray.cluster_resources()``).

    ``workers`` per trial (``N`` or ``MIN:MAX``; default 1 on GPUs, 2 on CPUs, 1 below 2
    CPUs), ``cpus_per_worker`` (default 0.5 on CPUs, 1 on GPUs), ``max_concurrent`` caps the
    result, ``use_gpu`` forces GPU or CPU workers (default: GPUs when there are any),
    ``cores`` is the physical core count when known (a one-node cluster whose logical CPUs
    were inflated, as ``init_ray`` does on small machines): CPU trials are planned on
    ``min(CPUs, cores)``.
    """
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    gpu = gpus >= 1 if use_gpu is None else use_gpu
    if gpu and gpus < 1:
        raise ValueError("use_gpu was asked for, but the cluster has no GPU")
    if cpus < 1:
        raise ValueError(f"the cluster has {cpus:g} CPUs; a trial needs at least 1")
    if gpu:
        workers = workers or "1"
        _, hi = parse_worker_range(workers, "--workers")
        if hi > gpus:
            raise ValueError(
                f"--workers {workers}: a trial of {hi} GPU workers needs {hi} GPUs, the "
                f"cluster has {gpus:g}"
            )
        slot = cpus_per_worker or 1.0
        by_gpu = int(gpus // hi)
        by_cpu = max(1, math.floor(cpus / (hi * slot + 1)))
        concurrency = min(by_gpu, by_cpu)
        reason = f"{gpus:g} GPUs / {hi} per trial = {by_gpu} trial(s) at once" + (
            f", capped to {by_cpu} by {cpus:g} CPUs" if by_cpu < by_gpu else ""
        )
    else:
        workers = workers or ("2" if cpus >= 2 else "1")
        _, hi = parse_worker_range(workers, "--workers")
        slot = cpus_per_worker or CPU_WORKER_SLOT
        usable = min(cpus, cores) if cores else cpus
        footprint = hi * max(1, math.ceil(slot)) + 1
        concurrency = max(1, math.floor(usable / footprint))
        seen = f"{cpus:g} CPUs" + (f" on {cores} cores" if cores and cores < cpus else "")
        reason = (
            f"{seen}, no GPU: a trial of {hi} worker(s) occupies about {footprint} "
            f"cores -> {concurrency} trial(s) at once"
        )
    if max_concurrent is not None:
        if max_concurrent < 1:
            raise ValueError(f"--max-concurrent must be >= 1, got {max_concurrent}")
        if max_concurrent < concurrency:
            reason += f", capped to {max_concurrent} by --max-concurrent"
            concurrency = max_concurrent
    return TrialPlan(concurrency, str(workers), float(slot), bool(gpu), reason)
