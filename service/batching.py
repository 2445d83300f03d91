"""Micro-batching: concurrent ``/embed`` requests for one model share one forward.

A request's inputs join a queue; one task per model takes the oldest request, waits at most
``max_wait_s`` after that request arrived for others to join (it stops waiting as soon as the
queue holds ``max_batch`` inputs), concatenates the requests that fit in ``max_batch`` and runs
the forward in a thread executor, so the event loop keeps accepting requests meanwhile. While a
forward runs the next requests queue up, so under load batches fill without any waiting (the
oldest request has already waited longer than ``max_wait_s``). A request larger than
``max_batch`` runs alone. ``max_batch = 1`` is batch-size-1 serving: one request per forward.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

__all__ = ["MicroBatcher", "check_batching"]

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    inputs: np.ndarray
    future: asyncio.Future
    arrived: float


def check_batching(max_batch: int, max_wait_s: float) -> None:
    """The batch limits every batcher takes (this one and ``service.ray_serve.ServeBatcher``)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if max_wait_s < 0:
        raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")


class MicroBatcher:
    """Collects requests into batches of at most ``max_batch`` inputs for ``forward``.

    Args:
        forward: ``(B, ...) -> (B, D)``, blocking; runs in ``executor``.
        executor: where forwards run (one thread: forwards of all models are serialised, so
            they do not fight over the cores).
        max_batch: inputs per forward at most (>= 1).
        max_wait_s: the longest a request waits for others before its batch runs.
        on_batch: called with the size of every batch run and the seconds its forward took
            (metrics).
        on_queued: called with the seconds each request waited before its forward started.

    Example:
        >>> batcher = MicroBatcher(model.embed, executor, 64, 0.002)  # doctest: +SKIP
        >>> embeddings = await batcher.submit(inputs)                  # doctest: +SKIP
    """

    def __init__(
        self,
        forward: Callable[[np.ndarray], np.ndarray],
        executor: Executor,
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
        on_queued: Callable[[float], None] | None = None,
    ) -> None:
        check_batching(max_batch, max_wait_s)
        self.forward = forward
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.on_queued = on_queued
        self._pending: collections.deque[_Request] = collections.deque()
        self._pending_items = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def submit(self, inputs: np.ndarray) -> np.ndarray:
        """The forward's output rows for ``inputs`` (N, ...), computed in some batch."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="micro-batcher")
        request = _Request(inputs, loop.create_future(), loop.time())
        self._pending.append(request)
        self._pending_items += len(inputs)
        self._wakeup.set()
        return await request.future

    async def close(self) -> None:
        """Stops the batching task; queued requests are cancelled."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            self._pending.popleft().future.cancel()
        self._pending_items = 0

    def _drop_abandoned(self) -> None:
        # a client that disconnected cancels its future; its inputs need no forward
        while self._pending and self._pending[0].future.done():
            self._pending_items -= len(self._pending.popleft().inputs)

    def _take(self) -> list[_Request]:
        first = self._pending.popleft()
        taken, size = [first], len(first.inputs)
        self._pending_items -= size
        while self._pending and size + len(self._pending[0].inputs) <= self.max_batch:
            request = self._pending.popleft()
            self._pending_items -= len(request.inputs)
            if not request.future.done():
                taken.append(request)
                size += len(request.inputs)
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned()
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._pending[0].arrived + self.max_wait_s
            if self._pending_items < self.max_batch and loop.time() < deadline:
                # a timer rather than wait_for: no new task for every request that joins
                expired = asyncio.Event()
                timer = loop.call_at(deadline, self._expire, expired)
                while self._pending_items < self.max_batch and not expired.is_set():
                    self._wakeup.clear()
                    await self._wakeup.wait()
                timer.cancel()
            self._drop_abandoned()
            if self._pending:
                await self._run_batch(loop, self._take())

    def _expire(self, expired: asyncio.Event) -> None:
        expired.set()
        self._wakeup.set()

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, taken: list[_Request]) -> None:
        if len(taken) == 1:
            batch = taken[0].inputs
        else:
            batch = np.concatenate([r.inputs for r in taken])
        if self.on_queued is not None:
            now = loop.time()
            for request in taken:
                self.on_queued(now - request.arrived)
        start = time.perf_counter()
        try:
            out = await loop.run_in_executor(self.executor, self.forward, batch)
        except Exception as exc:  # handed to every caller of this batch, not swallowed
            logger.exception("forward of a batch of %d failed", len(batch))
            for request in taken:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - start)
        start = 0
        for request in taken:
            stop = start + len(request.inputs)
            if not request.future.done():
                request.future.set_result(out[start:stop])
            start = stop
