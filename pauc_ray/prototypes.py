"""One epoch's clustering as tensors, and its per-batch view for the loss.

The clustering step (``cluster/``) returns numpy arrays keyed by sample id; the loss wants,
for every batch, each clustering's prototypes, concentrations and the batch's assignments.
This module converts once per epoch and looks batches up by id on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cluster.kmeans import MultiClusterResult
from pauc_ray.losses import PrototypeSet


@dataclass(frozen=True)
class EpochPrototypes:
    """``M`` clusterings of ``N`` samples, on one device.

    Attributes:
        ids: (N,) sorted sample ids the clustering covers.
        centroids: M tensors (K_m, D), L2-normalised prototypes ``c^m``.
        concentrations: M tensors (K_m,), ``phi^m`` of Eq. 2.
        assignments: (M, N) cluster of each id in each clustering.
    """

    ids: torch.Tensor
    centroids: tuple[torch.Tensor, ...]
    concentrations: tuple[torch.Tensor, ...]
    assignments: torch.Tensor

    @classmethod
    def from_result(
        cls, result: MultiClusterResult, device: torch.device | str = "cpu"
    ) -> EpochPrototypes:
        def tensor(array, dtype):
            return torch.as_tensor(array.copy(), dtype=dtype, device=device)

        return cls(
            ids=tensor(result.ids, torch.long),
            centroids=tuple(tensor(c.centroids, torch.float32) for c in result.clusterings),
            concentrations=tuple(
                tensor(c.concentration, torch.float32) for c in result.clusterings
            ),
            assignments=torch.stack(
                [tensor(c.assignments, torch.long) for c in result.clusterings]
            ),
        )

    @property
    def num_clusters(self) -> tuple[int, ...]:
        return tuple(c.shape[0] for c in self.centroids)

    def for_batch(self, batch_ids: torch.Tensor) -> Sequence[PrototypeSet]:
        """The :class:`PrototypeSet` of each clustering for a batch of sample ids (B,)."""
        batch_ids = batch_ids.to(self.ids.device, torch.long)
        pos = torch.searchsorted(self.ids, batch_ids).clamp_(max=self.ids.numel() - 1)
        if not torch.equal(self.ids[pos], batch_ids):
            missing = batch_ids[self.ids[pos] != batch_ids][:5].tolist()
            raise ValueError(f"batch ids {missing} are not in this epoch's clustering")
        batch_assign = self.assignments[:, pos]  # M x B
        return [
            PrototypeSet(prototypes=c, concentration=phi, assignment=a)
            for c, phi, a in zip(self.centroids, self.concentrations, batch_assign, strict=True)
        ]
