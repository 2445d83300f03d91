"""The MoCo encoder pair: a query encoder, its momentum copy, and a queue of past keys.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning" (the paper's
[17]); PCL and PAUC train on top of it. Shapes: B = batch, D = embedding size, R = queue size.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pauc_ray.collectives import gather_rows, world_size


class MoCo(nn.Module):
    """Query encoder ``f_q``, momentum key encoder ``f_k`` and a FIFO queue of keys.

    The queue is a buffer, so it travels with ``state_dict()`` (and so with checkpoints), and it
    accepts any batch size: keys are written at ``ptr, ptr+1, ...`` modulo ``R`` instead of
    assuming ``R % B == 0`` as the original MoCo does.

    Args:
        encoder: maps a batch of inputs to ``(B, D)`` features; it is deep-copied for ``f_k``.
        queue_size: ``R`` keys kept as InfoNCE negatives (Eq. 1); 0 disables the queue.
        momentum: ``m`` in ``theta_k <- m theta_k + (1 - m) theta_q``.
        bn_groups: the ghost-batch groups of the encoders' BatchNorm layers
            (:class:`~pauc_ray.model.backbones.GhostBatchNorm2d`); in training the key batch
            is shuffled before the key encoder and unshuffled after (MoCo's shuffle-BN).

    Example:
        >>> model = MoCo(nn.Linear(3, 2), queue_size=8)
        >>> q, k = model(torch.randn(4, 3), torch.randn(4, 3))
        >>> model.enqueue(k)
    """

    queue: torch.Tensor
    queue_ptr: torch.Tensor
    queue_filled: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        queue_size: int,
        momentum: float = 0.999,
        bn_groups: int = 1,
    ) -> None:
        super().__init__()
        if bn_groups < 1:
            raise ValueError(f"bn_groups must be >= 1, got {bn_groups}")
        self.bn_groups = bn_groups
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        for param in self.encoder_k.parameters():
            param.requires_grad_(False)
        dim = self._infer_dim()
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # Slots written with real keys so far; random initial keys are not used as negatives.
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def _infer_dim(self) -> int:
        out_features = getattr(self.encoder_q, "out_features", None)
        if out_features is None:
            out_features = getattr(self.encoder_q, "embedding_dim", None)
        if out_features is None:
            raise ValueError("encoder must expose `out_features` or `embedding_dim`")
        return int(out_features)

    @property
    def embedding_dim(self) -> int:
        return int(self.queue.shape[1])

    def forward(
        self,
        x_q: torch.Tensor,
        x_k: torch.Tensor,
        query_encoder: nn.Module | None = None,
        shuffle_across_workers: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``q = normalize(f_q(x_q))`` (B, D) with grad and ``k`` (B, D) without.

        ``query_encoder`` replaces ``f_q`` for the forward pass only, e.g. a
        DistributedDataParallel wrapper of it (so only ``f_q``'s gradients are all-reduced).
        ``shuffle_across_workers`` (in training, with ``torch.distributed`` running) is MoCo's
        shuffle-BN across workers: the key batch of every worker is gathered, permuted by one
        permutation from rank 0, split back into equal shares for the key encoder and
        unshuffled after it (:func:`shuffle_across_workers`).
        """
        q = F.normalize((query_encoder or self.encoder_q)(x_q), dim=1)
        with torch.no_grad():
            if self.training and shuffle_across_workers and world_size() > 1:
                shuffled, unshuffle = batch_shuffle_across_workers(x_k)
                k = batch_unshuffle_across_workers(self.encoder_k(shuffled), unshuffle)
            elif self.training and self.bn_groups > 1:
                # MoCo's shuffle-BN inside one worker: keys are normalised in ghost groups
                # of a random permutation, so a key's BatchNorm statistics come from another
                # subset of the batch than its query's.
                perm = torch.randperm(x_k.shape[0], device=x_k.device)
                k = torch.empty_like(k_out := self.encoder_k(x_k[perm]))
                k[perm] = k_out
            else:
                k = self.encoder_k(x_k)
            k = F.normalize(k, dim=1)
        return q, k

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``theta_k <- m theta_k + (1 - m) theta_q``; buffers (BatchNorm stats) are copied."""
        params_q = list(self.encoder_q.parameters())
        params_k = list(self.encoder_k.parameters())
        torch._foreach_mul_(params_k, self.momentum)
        torch._foreach_add_(params_k, params_q, alpha=1.0 - self.momentum)
        for buf_q, buf_k in zip(self.encoder_q.buffers(), self.encoder_k.buffers(), strict=True):
            buf_k.copy_(buf_q)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Writes ``keys`` (B, D) into the queue, wrapping around; B may exceed R."""
        size = self.queue.shape[0]
        if size == 0:
            return
        count = keys.shape[0]
        # Same ring state as writing the keys one by one: only the last R can survive.
        ptr = int(self.queue_ptr) + max(0, count - size)
        keys = keys.detach()[-size:]
        index = (ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue.index_copy_(0, index, keys.to(self.queue.dtype))
        self.queue_ptr.fill_((ptr + keys.shape[0]) % size)
        self.queue_filled.fill_(min(size, int(self.queue_filled) + count))

    def negatives(self) -> torch.Tensor:
        """The queue's real keys (R', D), R' <= R; empty until the first ``enqueue``."""
        filled = int(self.queue_filled)
        return self.queue if filled >= self.queue.shape[0] else self.queue[:filled]


@torch.no_grad()
def batch_shuffle_across_workers(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's ``_batch_shuffle_ddp``: this worker's share (B, ...) of the global key batch after
    one random permutation drawn on rank 0, and the index that undoes it. Every worker must
    hold the same ``B``. A key's BatchNorm statistics then come from samples of other workers,
    not from the batch its query saw (the information leak shuffle-BN exists to stop)."""
    gathered = gather_rows(x)
    permutation = torch.randperm(len(gathered), device=x.device)
    dist.broadcast(permutation, src=0)
    rank, size = dist.get_rank(), len(x)
    mine = permutation[rank * size : (rank + 1) * size]
    return gathered[mine], torch.argsort(permutation)


@torch.no_grad()
def batch_unshuffle_across_workers(y: torch.Tensor, unshuffle: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`batch_shuffle_across_workers`: this worker's own rows of ``y``."""
    gathered = gather_rows(y)
    rank, size = dist.get_rank(), len(y)
    return gathered[unshuffle[rank * size : (rank + 1) * size]]
