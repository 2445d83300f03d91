"""The clustering actor: one per training run, it owns the multi-K k-means of every epoch.

Each epoch after warm-up every training worker sends the momentum features of its shard, with
their sample ids, straight to this actor (the arrays travel through the object store, never
through the driver). When the parts of all ``world_size`` workers are in, the actor checks
that every expected id arrived exactly once, clusters once (:func:`cluster.kmeans.
cluster_features`), and answers every worker with a reference to the same result object.

Fault tolerance:
- the actor is created with ``max_restarts=-1`` and ``max_task_retries=-1``: if it dies, Ray
  restarts it and re-sends the workers' pending calls, so the epoch completes;
- results are cached per epoch in memory and, when ``cache_dir`` is given, in the run's
  store (a folder or an object store): a worker
  group restarted after a failure (or the actor itself, restarted) gets the cached result
  instead of clustering again;
- parts are grouped by a ``group`` token that a worker group draws once, beginning with the
  time it was formed: parts left over from a dead group never mix with those of its
  replacement (which may have another world size), whatever order they arrive in.

The actor knows features, ids and ``K``; nothing of models or training.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import ray

from cluster.config import KMeansConfig
from cluster.result import MultiClusterResult
from pauc_ray.storage import Location, resolve

logger = logging.getLogger(__name__)

_SHOWN = 5


@dataclass
class _Pending:
    world_size: int
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    result: ray.ObjectRef | None = None
    error: str | None = None


class ClusterActor:
    """Collects per-worker features for an epoch, clusters once, shares the result.

    Args:
        num_samples: ``N``; the ids of every epoch must be exactly ``0..N-1``.
        config: k-means settings (the K's, iterations, seed; the seed of epoch ``e`` is
            ``config.seed + 1000 * e`` so epochs differ but reruns agree).
        cache_dir: where finished epochs are kept as ``epoch_XXXXX.npz``: a local folder or
            any URI :mod:`pauc_ray.storage` opens (None: memory only).
    """

    def __init__(
        self,
        num_samples: int,
        config: KMeansConfig,
        cache_dir: str | None = None,
        log_level: str = "INFO",
    ) -> None:
        logging.getLogger("cluster").setLevel(log_level)  # its per-epoch k-means lines
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.config = config
        self.cache_dir = resolve(cache_dir) if cache_dir else None
        self._results: dict[int, ray.ObjectRef] = {}
        self._pending: dict[tuple[int, str], _Pending] = {}
        self._runs = 0
        if self.cache_dir is not None:
            self.cache_dir.mkdir()

    # -- queries ---------------------------------------------------------------------------
    def num_clusterings_run(self) -> int:
        """How many times this actor process ran k-means (a restart resets it)."""
        return self._runs

    def pid(self) -> int:
        return os.getpid()

    async def cached(self, epoch: int) -> list[ray.ObjectRef] | None:
        """``[ref]`` to epoch ``epoch``'s result if it is already known, else None."""
        ref = self._cached_ref(epoch)
        return None if ref is None else [ref]

    # -- the epoch's exchange ----------------------------------------------------------------
    async def cluster(
        self,
        epoch: int,
        group: str,
        rank: int,
        world_size: int,
        features: np.ndarray,
        ids: np.ndarray,
    ) -> list[ray.ObjectRef]:
        """Adds worker ``rank``'s part and waits for the epoch's result.

        Returns ``[ref]`` (a list, so Ray hands back the reference, not the value): the same
        object for every worker. Raises ``ValueError`` (for every worker of the group) if the
        parts do not cover ``0..N-1`` exactly once.
        """
        cached = self._cached_ref(epoch)
        if cached is not None:
            return [cached]
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        features = np.asarray(features)
        ids = np.asarray(ids)
        if features.ndim != 2 or ids.shape != (features.shape[0],):
            raise ValueError(
                f"rank {rank}: features must be (n, D) with one id per row, got "
                f"{features.shape} and ids {ids.shape}"
            )
        # Groups are ordered by their token (it starts with the time the group was formed):
        # a newer group for this epoch means the older one died, so its parts are dropped,
        # and parts of an older group arriving late are refused.
        newest = max((k[1] for k in self._pending if k[0] == epoch), default=group)
        if group < newest:
            raise ValueError(f"epoch {epoch}: superseded by a restarted worker group")
        for key in [k for k in self._pending if k[0] == epoch and k[1] < group]:
            stale = self._pending.pop(key)
            stale.error = f"epoch {epoch}: superseded by a restarted worker group"
            stale.done.set()
        pending = self._pending.setdefault((epoch, group), _Pending(world_size))
        if pending.world_size != world_size:
            raise ValueError(
                f"rank {rank} says world_size={world_size}, its group said {pending.world_size}"
            )
        pending.parts[rank] = (features, ids)
        if len(pending.parts) == world_size and not pending.done.is_set():
            try:
                pending.result = await asyncio.to_thread(self._run, epoch, pending.parts)
            except Exception as exc:  # every waiting worker must hear of it, not only this one
                pending.error = f"{type(exc).__name__}: {exc}"
            finally:
                pending.parts.clear()
                self._pending.pop((epoch, group), None)
                pending.done.set()
        await pending.done.wait()
        if pending.error is not None:
            raise ValueError(f"clustering of epoch {epoch} failed: {pending.error}")
        return [pending.result]

    # -- internals ---------------------------------------------------------------------------
    def _run(self, epoch: int, parts: dict[int, tuple[np.ndarray, np.ndarray]]) -> ray.ObjectRef:
        from cluster.kmeans import cluster_features  # faiss loads in the actor only

        ids = np.concatenate([parts[r][1] for r in sorted(parts)]).astype(np.int64)
        features = np.concatenate([parts[r][0] for r in sorted(parts)])
        _check_exactly_once(ids, self.num_samples)
        config = _epoch_config(self.config, epoch)
        result = cluster_features(features, ids, config)
        self._runs += 1
        logger.info(
            "epoch %d: clustered %d x %d into K=%s in %.2fs",
            epoch,
            *features.shape,
            result.num_clusters,
            sum(c.seconds for c in result.clusterings),
        )
        if self.cache_dir is not None:
            _save_atomic(self.cache_dir / f"epoch_{epoch:05d}.npz", result)
        ref = ray.put(result)
        self._results = {epoch: ref}  # keep only the newest epoch in memory
        return ref

    def _cached_ref(self, epoch: int) -> ray.ObjectRef | None:
        if epoch in self._results:
            return self._results[epoch]
        if self.cache_dir is not None:
            path = self.cache_dir / f"epoch_{epoch:05d}.npz"
            if path.is_file():
                with np.load(io.BytesIO(path.read_bytes())) as state:
                    result = MultiClusterResult.from_state(dict(state))
                self._results = {epoch: ray.put(result)}
                return self._results[epoch]
        return None


def _epoch_config(config: KMeansConfig, epoch: int) -> KMeansConfig:
    from dataclasses import replace

    return replace(config, seed=config.seed + 1000 * epoch)


def _check_exactly_once(ids: np.ndarray, num_samples: int) -> None:
    counts = np.bincount(ids[(ids >= 0) & (ids < num_samples)], minlength=num_samples)
    outside = ids[(ids < 0) | (ids >= num_samples)]
    duplicates = np.flatnonzero(counts > 1)
    missing = np.flatnonzero(counts == 0)
    problems = []
    if outside.size:
        problems.append(
            f"{outside.size} ids outside 0..{num_samples - 1} (e.g. {outside[:_SHOWN].tolist()})"
        )
    if duplicates.size:
        problems.append(
            f"{duplicates.size} ids sent more than once (e.g. {duplicates[:_SHOWN].tolist()})"
        )
    if missing.size:
        problems.append(f"{missing.size} ids missing (e.g. {missing[:_SHOWN].tolist()})")
    if problems:
        raise ValueError(
            "the feature pass did not cover every id exactly once: " + "; ".join(problems)
        )


def _save_atomic(path: Location, result: MultiClusterResult) -> None:
    """Writes the whole ``.npz`` at once (never a half file: see :mod:`pauc_ray.storage`)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in result.to_state().items()})
    path.write_bytes(buffer.getvalue())


def create_cluster_actor(
    num_samples: int,
    config: KMeansConfig,
    *,
    cache_dir: str | None = None,
    num_gpus: float = 0.0,
    name: str | None = None,
    log_level: str = "INFO",
    env: dict[str, str] | None = None,
) -> ray.actor.ActorHandle:
    """Starts the run's :class:`ClusterActor`.

    It takes no CPU slot (``num_cpus=0``: it works between training steps, when workers wait
    for it, and must never starve train workers or Ray Data), ``num_gpus`` when the caller
    found a GPU faiss can use, and ``OMP_WAIT_POLICY=PASSIVE`` so faiss's idle threads do not
    spin on cores shared with training. ``env``: more environment variables (the run
    store's credentials, when ``cache_dir`` is on an object store).
    """
    options = {
        "num_cpus": 0,
        "num_gpus": num_gpus,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": 64,
        "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE", **(env or {})}},
    }
    if name is not None:
        options["name"] = name
        options["get_if_exists"] = True
    return (
        ray.remote(ClusterActor)
        .options(**options)
        .remote(num_samples, config, cache_dir, log_level)
    )
