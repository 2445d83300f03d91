"""Defaults for the clustering step, in one frozen dataclass.

`cluster/` knows nothing of models or training, so its settings live here rather than in
`pauc_ray.config`; that module nests this one so a run's config still has one source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KMeansConfig:
    """Multi-K k-means settings (PCL's defaults: 20 iterations, 5 restarts).

    Attributes:
        num_clusters: the K of each clustering. ``(20, 40, 80)`` suits datasets of thousands
            to tens of thousands of samples with 10 classes (digits, Fashion-MNIST); the paper
            uses ``(2500, 5000, 10000)`` on ImageNet (Sec. 5.1).
        niter: Lloyd iterations per restart.
        nredo: restarts; the one with the lowest inertia is kept.
        seed: base seed; clustering ``m`` uses ``seed + m`` so the K's are independent.
        min_points_per_centroid: a warning (``logging``) below this many points per centroid.
        max_points_per_centroid: each restart trains on a random subsample of ``K * this``
            points when there are more (as faiss does); one last pass assigns them all.
        concentration_mean: the concentrations ``phi`` are rescaled to this mean (PCL sets it
            to the InfoNCE temperature ``tau``). ``None`` is a placeholder for a caller that
            fills it in (training uses ``loss.temperature``); :func:`cluster_features`
            refuses it.
        use_gpu: ``None`` picks the GPU index when faiss sees a GPU; ``True``/``False`` force it.
    """

    num_clusters: tuple[int, ...] = (20, 40, 80)
    niter: int = 20
    nredo: int = 5
    seed: int = 0
    min_points_per_centroid: int = 3
    max_points_per_centroid: int = 1000
    concentration_mean: float | None = 0.2
    use_gpu: bool | None = None
