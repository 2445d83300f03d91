"""Immutable results of the multi-K clustering, and their flat checkpoint form.

Arrays inside are private read-only copies (``writeable=False``), so a result can be shared
between the trainer, its workers and a checkpoint without anyone changing it under the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ClusterResult", "MultiClusterResult"]

STATE_FORMAT_VERSION = 1


def _frozen(value: Any, dtype: type, name: str, ndim: int) -> np.ndarray:
    """A read-only copy of ``value`` as an ``ndim``-D array of ``dtype``."""
    array = np.array(value, dtype=dtype, copy=True, order="C")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """One k-means clustering of ``N`` points into ``K`` clusters.

    Attributes:
        num_clusters: ``K``.
        centroids: (K, D) float32 L2-normalised prototypes ``c`` (the raw k-means centroids
            divided by their norms).
        assignments: (N,) int64 cluster of each point, aligned with the sorted ids of the
            :class:`MultiClusterResult` holding this result.
        concentration: (K,) float32 ``phi`` of Eq. 2 (see :mod:`cluster.concentration_estimate`).
        counts: (K,) int64 members per cluster (zero for an empty cluster).
        inertia: sum over points of the squared L2 distance to the raw, unnormalised centroid
            of their cluster (the k-means objective), in squared feature units.
        seconds: wall-clock time of this clustering (training, assignment, ``phi``).
        iterations: Lloyd iterations run, summed over the ``nredo`` restarts; each restart runs
            at most ``niter``, fewer once no point changes cluster.
        passes: assignment passes over the points (each a full nearest-centroid search, the
            cost of k-means), restarts and the final assignment included; 0 when unknown (a
            result saved before this field existed).
    """

    num_clusters: int
    centroids: np.ndarray
    assignments: np.ndarray
    concentration: np.ndarray
    counts: np.ndarray
    inertia: float
    seconds: float
    iterations: int
    passes: int = 0

    def __post_init__(self) -> None:
        k = int(self.num_clusters)
        object.__setattr__(self, "num_clusters", k)
        object.__setattr__(self, "centroids", _frozen(self.centroids, np.float32, "centroids", 2))
        object.__setattr__(
            self, "assignments", _frozen(self.assignments, np.int64, "assignments", 1)
        )
        object.__setattr__(
            self, "concentration", _frozen(self.concentration, np.float32, "concentration", 1)
        )
        object.__setattr__(self, "counts", _frozen(self.counts, np.int64, "counts", 1))
        object.__setattr__(self, "inertia", float(self.inertia))
        object.__setattr__(self, "seconds", float(self.seconds))
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "passes", int(self.passes))
        for name in ("centroids", "concentration", "counts"):
            if getattr(self, name).shape[0] != k:
                raise ValueError(
                    f"ClusterResult: {name} must have num_clusters={k} rows, "
                    f"got shape {getattr(self, name).shape}"
                )
        if self.counts.sum() != len(self.assignments):
            raise ValueError(
                f"ClusterResult: counts sum to {self.counts.sum()} but there are "
                f"{len(self.assignments)} assignments"
            )


@dataclass(frozen=True, eq=False)
class MultiClusterResult:
    """``M`` clusterings (one per ``K``) of the same ``N`` samples, keyed by sample id.

    Attributes:
        ids: (N,) int64 sample ids, strictly increasing; row ``i`` of every clustering's
            ``assignments`` belongs to ``ids[i]``.
        clusterings: the ``M`` results, in the order of ``KMeansConfig.num_clusters``.
    """

    ids: np.ndarray
    clusterings: tuple[ClusterResult, ...]

    def __post_init__(self) -> None:
        ids = _frozen(self.ids, np.int64, "ids", 1)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "clusterings", tuple(self.clusterings))
        if len(ids) > 1 and not (np.diff(ids) > 0).all():
            raise ValueError("MultiClusterResult: ids must be strictly increasing (sorted, unique)")
        for m, result in enumerate(self.clusterings):
            if len(result.assignments) != len(ids):
                raise ValueError(
                    f"MultiClusterResult: clustering {m} has {len(result.assignments)} "
                    f"assignments for {len(ids)} ids"
                )

    @property
    def num_samples(self) -> int:
        """``N``, the number of clustered samples."""
        return len(self.ids)

    @property
    def num_clusters(self) -> tuple[int, ...]:
        """The ``K`` of each clustering."""
        return tuple(c.num_clusters for c in self.clusterings)

    def assignments_for(self, ids: np.ndarray) -> np.ndarray:
        """Cluster of each of ``ids`` in each clustering.

        Args:
            ids: (n,) sample ids, in any order, repeats allowed; each must be one of ``self.ids``.

        Returns:
            (M, n) int64, row ``m`` the clusters in clustering ``m``.
        """
        query = np.asarray(ids)
        if query.ndim != 1 or (query.size and not np.issubdtype(query.dtype, np.integer)):
            raise ValueError(
                f"assignments_for: ids must be a 1-D integer array, got shape {query.shape} "
                f"and dtype {query.dtype}"
            )
        query = query.astype(np.int64, copy=False)
        if not len(self.ids):
            pos = np.zeros(len(query), dtype=np.int64)
            unknown = np.ones(len(query), dtype=bool)
        else:
            pos = np.minimum(np.searchsorted(self.ids, query), len(self.ids) - 1)
            unknown = self.ids[pos] != query
        if unknown.any():
            raise ValueError(
                f"assignments_for: {int(unknown.sum())} id(s) were not clustered, e.g. "
                f"{np.unique(query[unknown])[:5].tolist()}"
            )
        out = np.empty((len(self.clusterings), len(query)), dtype=np.int64)
        for m, result in enumerate(self.clusterings):
            np.take(result.assignments, pos, out=out[m])
        return out

    def to_state(self) -> dict[str, np.ndarray | int | float]:
        """A flat dict of numpy arrays, ints and floats (safe for ``torch.load(weights_only)``).

        Keys: ``format_version``, ``num_clusterings``, ``ids``, and for each clustering ``m``
        (its position, not its ``K``): ``k{m}_num_clusters``, ``k{m}_centroids``,
        ``k{m}_assignments``, ``k{m}_concentration``, ``k{m}_counts``, ``k{m}_inertia``,
        ``k{m}_seconds``, ``k{m}_iterations``, ``k{m}_passes``. Arrays are writable copies.
        """
        state: dict[str, np.ndarray | int | float] = {
            "format_version": STATE_FORMAT_VERSION,
            "num_clusterings": len(self.clusterings),
            "ids": self.ids.copy(),
        }
        for m, c in enumerate(self.clusterings):
            state[f"k{m}_num_clusters"] = c.num_clusters
            state[f"k{m}_centroids"] = c.centroids.copy()
            state[f"k{m}_assignments"] = c.assignments.copy()
            state[f"k{m}_concentration"] = c.concentration.copy()
            state[f"k{m}_counts"] = c.counts.copy()
            state[f"k{m}_inertia"] = c.inertia
            state[f"k{m}_seconds"] = c.seconds
            state[f"k{m}_iterations"] = c.iterations
            state[f"k{m}_passes"] = c.passes
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MultiClusterResult:
        """Inverse of :meth:`to_state`; values may also be CPU tensors or 0-d arrays."""

        def get(key: str) -> Any:
            if key not in state:
                raise ValueError(f"MultiClusterResult.from_state: missing key {key!r}")
            return state[key]

        version = int(get("format_version"))
        if version != STATE_FORMAT_VERSION:
            raise ValueError(
                f"MultiClusterResult.from_state: format_version {version} is not supported "
                f"(expected {STATE_FORMAT_VERSION})"
            )
        clusterings = tuple(
            ClusterResult(
                num_clusters=int(get(f"k{m}_num_clusters")),
                centroids=np.asarray(get(f"k{m}_centroids")),
                assignments=np.asarray(get(f"k{m}_assignments")),
                concentration=np.asarray(get(f"k{m}_concentration")),
                counts=np.asarray(get(f"k{m}_counts")),
                inertia=float(get(f"k{m}_inertia")),
                seconds=float(get(f"k{m}_seconds")),
                iterations=int(get(f"k{m}_iterations")),
                passes=int(state.get(f"k{m}_passes", 0)),  # absent in older checkpoints
            )
            for m in range(int(get("num_clusterings")))
        )
        return cls(ids=np.asarray(get("ids")), clusterings=clusterings)
