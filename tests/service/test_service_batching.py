"""service.batching.MicroBatcher: concurrent requests share forwards, with a bounded wait."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.batching import MicroBatcher


class Recorder:
    """A forward that doubles its input and records every batch size."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_on = fail_on

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.fail_on is not None and len(self.sizes) == self.fail_on:
            raise RuntimeError("forward broke")
        return batch * 2.0


def run(coro):
    return asyncio.run(coro)


async def _gather(batcher: MicroBatcher, requests: list[np.ndarray]) -> list[np.ndarray]:
    try:
        return await asyncio.gather(*(batcher.submit(r) for r in requests))
    finally:
        await batcher.close()


def requests_of(sizes: list[int]) -> list[np.ndarray]:
    start, out = 0, []
    for size in sizes:
        out.append(np.arange(start, start + size, dtype=np.float32)[:, None])
        start += size
    return out


@pytest.fixture
def executor():
    with ThreadPoolExecutor(1) as pool:
        yield pool


def test_concurrent_requests_share_one_forward_and_get_their_own_rows(executor):
    forward = Recorder()
    requests = requests_of([1, 3, 2, 2])
    out = run(_gather(MicroBatcher(forward, executor, 8, 0.05), requests))
    assert forward.sizes == [8]
    for request, result in zip(requests, out):
        np.testing.assert_array_equal(result, request * 2)


def test_max_batch_bounds_every_batch_and_a_large_request_runs_alone(executor):
    forward = Recorder()
    requests = requests_of([3, 3, 3, 10, 1])
    out = run(_gather(MicroBatcher(forward, executor, 6, 0.0), requests))
    assert forward.sizes == [6, 3, 10, 1]
    for request, result in zip(requests, out):
        np.testing.assert_array_equal(result, request * 2)


def test_max_batch_one_is_one_request_per_forward(executor):
    forward = Recorder()
    run(_gather(MicroBatcher(forward, executor, 1, 0.05), requests_of([1] * 5)))
    assert forward.sizes == [1] * 5


def test_the_wait_is_bounded(executor):
    forward = Recorder()

    async def one() -> float:
        batcher = MicroBatcher(forward, executor, 64, 0.2)
        start = time.perf_counter()
        await batcher.submit(requests_of([1])[0])
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    elapsed = run(one())
    assert 0.19 <= elapsed < 2.0  # waited for company, then ran alone
    assert forward.sizes == [1]


def test_a_full_batch_does_not_wait(executor):
    forward = Recorder()

    async def full() -> float:
        batcher = MicroBatcher(forward, executor, 4, 10.0)
        start = time.perf_counter()
        await asyncio.gather(*(batcher.submit(r) for r in requests_of([2, 2])))
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    assert run(full()) < 2.0
    assert forward.sizes == [4]


def test_requests_arriving_during_a_forward_form_the_next_batch(executor):
    def slow(batch):
        time.sleep(0.2)
        return batch

    sizes = []

    async def staggered():
        batcher = MicroBatcher(slow, executor, 64, 0.0, on_batch=lambda n, s: sizes.append((n, s)))
        first = asyncio.ensure_future(batcher.submit(requests_of([1])[0]))
        await asyncio.sleep(0.05)  # the first forward is running now
        rest = [asyncio.ensure_future(batcher.submit(r)) for r in requests_of([1] * 5)]
        await asyncio.gather(first, *rest)
        await batcher.close()

    run(staggered())
    assert [n for n, _ in sizes] == [1, 5]
    assert all(0.2 <= seconds < 5 for _, seconds in sizes)  # the forward's time is reported


def test_a_failing_forward_fails_its_callers_only(executor):
    forward = Recorder(fail_on=1)

    async def scenario():
        batcher = MicroBatcher(forward, executor, 8, 0.0)
        with pytest.raises(RuntimeError, match="forward broke"):
            await batcher.submit(requests_of([2])[0])
        out = await batcher.submit(requests_of([3])[0])  # the batcher still works
        await batcher.close()
        return out

    assert run(scenario()).shape == (3, 1)
    assert forward.sizes == [2, 3]


def test_abandoned_requests_are_not_computed(executor):
    forward = Recorder()

    async def scenario():
        batcher = MicroBatcher(forward, executor, 8, 0.1)
        gone = asyncio.ensure_future(batcher.submit(requests_of([5])[0]))
        await asyncio.sleep(0)
        gone.cancel()  # the client went away while waiting for company
        kept = await batcher.submit(requests_of([2])[0])
        await batcher.close()
        return kept

    assert run(scenario()).shape == (2, 1)
    assert forward.sizes == [2]


def test_close_cancels_queued_requests(executor):
    async def scenario():
        batcher = MicroBatcher(Recorder(), executor, 8, 5.0)
        pending = asyncio.ensure_future(batcher.submit(requests_of([1])[0]))
        await asyncio.sleep(0.01)
        await batcher.close()
        with pytest.raises(asyncio.CancelledError):
            await pending

    run(scenario())


def test_settings_are_checked(executor):
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        MicroBatcher(Recorder(), executor, 0, 0.0)
    with pytest.raises(ValueError, match="max_wait_s must be >= 0"):
        MicroBatcher(Recorder(), executor, 1, -1.0)
