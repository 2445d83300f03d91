"""Collectives across training processes, each finished before the next starts.

The global batch across processes, with the gradient sent back to each row's own process.

Hand-written because torch's own choices do not fit here: ``torch.distributed.nn.all_gather``
is deprecated, and its replacement, ``torch.distributed._functional_collectives``, returns
before the collective finishes. With gloo that let the next collective start while the
gather was still in flight on the other of ProcessGroupGloo's two threads; a two-worker
Fashion-MNIST run (2026-12-05) hung that way, one rank's gloo thread spinning in a buffer's
destructor after an all-gather and the other rank waiting in the backward's reduce-scatter
(README, "Known problem"). Here every collective is issued and finished in the calling thread,
one at a time, as in the GatherLayer of SimCLR-style code (solo-learn, lightly).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["allreduce_one_at_a_time", "gather_rows", "world_size"]


def world_size() -> int:
    """Processes in the default group; 1 without ``torch.distributed``."""
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


def _all_gather(x: Tensor) -> Tensor:
    parts = [
        torch.empty_like(x, memory_format=torch.contiguous_format) for _ in range(world_size())
    ]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherRows(torch.autograd.Function):
    """Forward: every process's (B, ...) rows, concatenated in rank order (W*B, ...).
    Backward: the gradients of all processes are summed (all-reduce) and each process keeps
    the rows it contributed, so d(loss summed over processes)/d(own rows)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rows = x.shape[0]
        return _all_gather(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce writes in place
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_rows(x: Tensor) -> Tensor:
    """``x``'s rows from every process in rank order (with gradient when ``x`` has one); ``x``
    itself in one process. Every process must pass the same shape."""
    if world_size() == 1:
        return x
    return _GatherRows.apply(x) if x.requires_grad else _all_gather(x)


# (no annotations: DDP compares them with its own types, and this module's are strings)
def allreduce_one_at_a_time(state, bucket):
    """A DDP communication hook (``ddp.register_comm_hook(None, allreduce_one_at_a_time)``):
    the bucket's gradients averaged over the processes, as DDP's default hook does, but the
    all-reduce is finished before the hook returns, so two buckets never communicate at once.
    For gloo, where the default hook's asynchronous all-reduces run side by side on the
    process group's two threads; on CPU workers the overlap with the backward it gives up is
    small (a few MB over loopback per step)."""
    buffer = bucket.buffer()
    buffer.div_(dist.get_world_size())
    dist.all_reduce(buffer)
    future: torch.futures.Future = torch.futures.Future()
    future.set_result(buffer)
    return future
