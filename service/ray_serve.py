"""The same FastAPI app on Ray Serve: replicas on a Ray cluster instead of one uvicorn process.

    python -m service --ray-serve --models ROOT [--replicas 2 | 1:4] [--gpus-per-replica 1]
    serve run service.ray_serve:app_builder models=ROOT replicas=2      # Ray's own CLI

Each replica runs :func:`service.app.create_app` behind ``@serve.ingress`` (the routes, the
errors, the API key, the limits and the metrics are the uvicorn mode's, one implementation).
What differs in a replica, and why:

- **Models load lazily.** At start a replica only finds the run folders; a model is loaded on
  its first request through Serve's model multiplexing (``@serve.multiplexed``), which keeps
  ``max_models_per_replica`` per replica and drops the least recently used, so a ROOT with
  hundreds of runs is not loaded at once. Clients may also send the model id in Serve's
  ``serve_multiplexed_model_id`` header: Serve then routes the request to a replica that
  already holds the model. ``GET /models`` describes the models from ``model.json`` without
  loading weights.
- **Micro-batching is Serve's** ``@serve.batch`` (:class:`ServeBatcher`), counting inputs, not
  requests (``batch_size_fn``), so ``max_batch`` means the same as under uvicorn. The uvicorn
  mode keeps its own :class:`~service.batching.MicroBatcher`: Serve's batching exists only
  inside a Serve replica, and the one-machine default should not need Ray.
- **NEMD jobs** are shared by the replicas through ``--nemd-jobs-dir`` (default: a folder per
  node and port under the temporary directory, enough for replicas on one node; across nodes
  name a folder on a shared filesystem), so any replica answers for any job.
- **Metrics** at ``/metrics`` are the answering replica's own; Ray's metrics agent exports
  Serve's per-deployment metrics for the whole cluster.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from service.batching import check_batching
from service.settings import ServiceSettings

__all__ = [
    "APP_NAME",
    "ServeBatcher",
    "app_builder",
    "build_application",
    "deployment_options",
    "replica_settings",
    "wait_for_stop_signal",
]

logger = logging.getLogger(__name__)

APP_NAME = "pauc-service"


def _count_inputs(requests: list[tuple[np.ndarray, float]]) -> int:
    """A Serve batch's size in inputs (each request carries ``(inputs, arrival time)``)."""
    return sum(len(inputs) for inputs, _ in requests)


class ServeBatcher:
    """:class:`~service.batching.MicroBatcher`'s interface on Serve's ``@serve.batch``.

    Requests join Serve's batch queue; a batch holds at most ``max_batch`` inputs, waits at
    most ``max_wait_s`` for more, and runs ``forward`` once. A request larger than
    ``max_batch`` runs alone (Serve would refuse an item over ``max_batch_size``), as under
    uvicorn. Must be used inside a Serve replica's event loop.

    The forward runs on the replica's user-code event loop; ``executor`` is accepted for
    :class:`~service.batching.MicroBatcher`'s signature and not used. Serve runs that loop in its own
    thread, apart from the replica's control loop, so blocking it delays only this replica's
    requests, and they queue meanwhile, so the next batch is fuller. In a thread of its own the
    forward competed for the GIL with Serve's router, metrics and core-worker threads at every
    torch op: measured (2026-12-03, 32 clients, one replica, the machine shared with a training
    run) 49 inputs/s with a mean batch of 1.2 and the forward thread 88 % busy, against 94
    inputs/s and a mean batch of 8.9 with the forward on the loop (``benchmarks/RESULTS.md``).
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
        from ray import serve

        check_batching(max_batch, max_wait_s)
        self.forward = forward
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.on_queued = on_queued

        async def run_batch(requests: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
            return await self._run(requests)

        self._batched = serve.batch(
            max_batch_size=max_batch,
            batch_wait_timeout_s=max_wait_s,
            batch_size_fn=_count_inputs,
        )(run_batch)

    async def submit(self, inputs: np.ndarray) -> np.ndarray:
        """The forward's output rows for ``inputs`` (N, ...), computed in some batch."""
        arrived = asyncio.get_running_loop().time()
        if len(inputs) > self.max_batch:
            return (await self._run([(inputs, arrived)]))[0]
        return await self._batched((inputs, arrived))

    async def close(self) -> None:
        """Nothing to stop: Serve owns the batch queue (it ends with the replica)."""

    async def _run(self, requests: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        if self.on_queued is not None:
            now = loop.time()
            for _, arrived in requests:
                self.on_queued(now - arrived)
        parts = [inputs for inputs, _ in requests]
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        start = time.perf_counter()
        out = self.forward(batch)  # on this loop on purpose: see the class docstring
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - start)
        return np.split(out, np.cumsum([len(p) for p in parts])[:-1])


def deployment_options(settings: ServiceSettings) -> dict[str, Any]:
    """``serve.deployment`` options: a fixed replica count, or autoscaling for ``MIN:MAX``."""
    lo, hi = settings.replica_range
    options: dict[str, Any] = {
        "name": APP_NAME,
        "ray_actor_options": {
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": settings.gpus_per_replica,
        },
        # requests a replica takes at once: enough to fill a batch from small requests
        "max_ongoing_requests": max(2 * settings.max_batch, 64),
    }
    if lo == hi:
        options["num_replicas"] = lo
    else:
        options["autoscaling_config"] = {
            "min_replicas": lo,
            "max_replicas": hi,
            "target_ongoing_requests": settings.target_ongoing_requests,
        }
    return options


def replica_settings(settings: ServiceSettings) -> ServiceSettings:
    """What the replicas run with: ``settings``, plus a folder to share NEMD jobs through when
    there may be several replicas and none was named (one per node and port under the
    temporary directory: replicas on one node see each other's jobs; across nodes the user
    names a folder on a shared filesystem)."""
    if settings.nemd_jobs_dir is not None or settings.replica_range[1] == 1:
        return settings
    shared = Path(tempfile.gettempdir()) / f"{APP_NAME}-nemd-jobs-{settings.port}"
    return settings.model_copy(update={"nemd_jobs_dir": shared})


def build_application(settings: ServiceSettings):
    """The Serve application (``serve.run`` it): :func:`create_app` in every replica, models
    multiplexed per replica, batches by :class:`ServeBatcher`."""
    from ray import serve

    # the settings travel to the replicas as plain values and are validated again there
    values = replica_settings(settings).model_dump(mode="json")
    max_models = settings.max_models_per_replica

    @serve.deployment(**deployment_options(settings))
    @serve.ingress()
    class PaucService:
        def __init__(self, values: dict[str, Any]) -> None:
            import sys

            self.settings = ServiceSettings.model_validate(values)
            self._app = None
            # the replica's process serves this deployment only, so the service's GIL switch
            # interval applies to it as to a uvicorn process (here it paces Serve's own threads
            # against the loop that runs the forward)
            sys.setswitchinterval(self.settings.switch_interval_ms / 1000.0)

        def __serve_build_asgi_app__(self):
            from service.app import create_app

            self._app = create_app(
                self.settings, model_loader=self.load_model, batcher_class=ServeBatcher
            )
            return self._app

        @serve.multiplexed(max_num_models_per_replica=max_models)
        async def load_model(self, model_id: str):
            registry = self._app.state.service.registry
            served = await asyncio.to_thread(registry.load, model_id)
            logger.info("model %s loaded in this replica (%s)", model_id, served.device)
            return served

    return PaucService.bind(values)


def app_builder(args: dict[str, str]):
    """For ``serve run service.ray_serve:app_builder key=value ...``: each key is a setting
    (``models=ROOT replicas=2``); the environment's ``PAUC_SERVICE_*`` fill the rest."""
    import os

    from service.settings import settings_from

    return build_application(settings_from(None, os.environ, **dict(args)))


def serve_forever(settings: ServiceSettings) -> None:
    """``python -m service --ray-serve``: connects to the Ray cluster (or starts a local one),
    starts Serve's HTTP proxy on ``host:port`` and runs the application until interrupted."""
    import ray
    from ray import serve

    from pauc_ray.train.driver import init_ray

    init_ray(verbose=settings.log_level == "debug")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings), name=APP_NAME, route_prefix="/", blocking=False)
    lo, hi = settings.replica_range

    def announce() -> None:  # once Ctrl-C and SIGTERM already stop it cleanly
        logger.info(
            "Ray Serve: %s on http://%s:%d, %s replica(s)",
            APP_NAME,
            settings.host,
            settings.port,
            lo if lo == hi else f"{lo}-{hi}",
        )

    try:
        signum = wait_for_stop_signal(on_ready=announce)
        logger.info("%s: shutting Ray Serve down", signal.Signals(signum).name)
    finally:
        serve.shutdown()
        ray.shutdown()


def wait_for_stop_signal(on_ready: Callable[[], None] | None = None) -> int:
    """Blocks until SIGINT or SIGTERM arrives; returns its number. ``on_ready`` is called once
    the handlers are installed: a signal that comes after it is never lost (one that came
    before would be ignored, or end the process without ``serve.shutdown()``).

    The handlers are installed here rather than left to Python's ``KeyboardInterrupt``: a
    process started in the background by a shell inherits SIGINT as ignored, and Python then
    installs no handler, so Ctrl-C's signal did nothing (measured: ``bench_service.py`` run from
    a script waited 90 s for each Serve server); and SIGTERM, what ``kill``, systemd and
    Kubernetes send, would end the process without ``serve.shutdown()``. Main thread only.
    """
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not stop.wait(3600):  # a signal's handler runs between waits and sets it
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0]
