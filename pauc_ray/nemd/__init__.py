"""NEMD: Normalised Earth Mover's Distance between prototypes (Eq. 3, DESIGN.md section 2).

``nemd_report`` is the entry point; ``sinkhorn_w1_batched`` / ``sinkhorn_w1_pairs`` are the
batched fast path (log-domain Sinkhorn in torch) and ``pot_w1_matrix`` the per-pair POT
reference it is tested against. ``python -m pauc_ray.nemd`` runs the report on ``.npy`` files.
No Ray, and no I/O outside the CLI.

Exports load lazily, so the CLI can reject a bad file before torch and POT are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pauc_ray.nemd.reference import pot_w1_matrix, pot_w1_pair, pot_w1_values
    from pauc_ray.nemd.report import NEMDReport, nemd_report
    from pauc_ray.nemd.sinkhorn import sinkhorn_w1_batched, sinkhorn_w1_pairs
    from pauc_ray.nemd.synthetic import sphere_clusters
    from pauc_ray.nemd.validation import check_inputs, check_nemd_config

_EXPORTS = {
    "NEMDReport": "pauc_ray.nemd.report",
    "nemd_report": "pauc_ray.nemd.report",
    "check_inputs": "pauc_ray.nemd.validation",
    "check_nemd_config": "pauc_ray.nemd.validation",
    "pot_w1_matrix": "pauc_ray.nemd.reference",
    "pot_w1_pair": "pauc_ray.nemd.reference",
    "pot_w1_values": "pauc_ray.nemd.reference",
    "sinkhorn_w1_batched": "pauc_ray.nemd.sinkhorn",
    "sinkhorn_w1_pairs": "pauc_ray.nemd.sinkhorn",
    "sphere_clusters": "pauc_ray.nemd.synthetic",
}

__all__ = [
    "NEMDReport",
    "check_inputs",
    "check_nemd_config",
    "nemd_report",
    "pot_w1_matrix",
    "pot_w1_pair",
    "pot_w1_values",
    "sinkhorn_w1_batched",
    "sinkhorn_w1_pairs",
    "sphere_clusters",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pauc_ray.nemd' has no attribute {name!r}")
