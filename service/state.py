"""What one running app holds (models, datasets, batchers, jobs, metrics), and its lifecycle.

Built by :func:`service.app.create_app`, started and stopped by the app's lifespan: nothing
is loaded at import time. Routes reach it through the ``StateDep`` dependency.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import torch
from fastapi import Depends, Request

from pauc_ray.devices import resolve_device
from service.batching import MicroBatcher
from service.datasets import DatasetCatalog
from service.errors import ApiError
from service.jobs import JobStore
from service.metrics import ServiceMetrics
from service.registry import _LOAD_ERRORS, ModelRegistry, ServedModel
from service.settings import ServiceSettings

__all__ = ["ServiceState", "StateDep", "get_state"]

logger = logging.getLogger(__name__)


class ServiceState:
    """The service's parts; :meth:`start` loads the models (in a thread, in the background)."""

    def __init__(
        self,
        settings: ServiceSettings,
        model_loader: Callable[[str], Awaitable[ServedModel]] | None = None,
        batcher_class: type[MicroBatcher] | Callable[..., Any] = MicroBatcher,
    ) -> None:
        """
        Args:
            settings: the service's settings.
            model_loader: None: every model is loaded at start (one process serving all).
                Else models are only discovered at start and ``await model_loader(id)``
                returns one on first use (Ray Serve's multiplexed loader, which keeps the
                recently used ones per replica).
            batcher_class: builds each model's micro-batcher, with ``MicroBatcher``'s
                arguments: ``MicroBatcher`` under uvicorn, ``ServeBatcher`` (Serve's
                ``@serve.batch``) in a Serve replica.
        """
        self.settings = settings
        self.model_loader = model_loader
        self.batcher_class = batcher_class
        self.metrics = ServiceMetrics()
        self.registry = ModelRegistry(
            settings.models, settings.discovery_depth, resolve_device(settings.device)
        )
        self.datasets = DatasetCatalog(settings.models)
        self.jobs = JobStore(
            settings.nemd_workers,
            settings.nemd_max_pending,
            settings.nemd_keep_jobs,
            self.metrics,
            time_limit_s=settings.nemd_time_limit_s,
            shared_dir=settings.nemd_jobs_dir,
        )
        self.ready = False
        self.load_error: str | None = None
        self._forward_executor: ThreadPoolExecutor | None = None
        self._batchers: dict[str, MicroBatcher] = {}
        self._loading: asyncio.Task | None = None

    async def start(self, load_in_background: bool = True) -> None:
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        # one thread: forwards of all models take turns instead of fighting over the cores
        self._forward_executor = ThreadPoolExecutor(1, thread_name_prefix="forward")
        self.jobs.start()
        logger.info("settings: %s", self.settings.public())
        if load_in_background:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        else:
            await self._load()

    async def _load(self) -> None:
        try:
            if self.model_loader is None:
                await asyncio.to_thread(self.registry.load_all)
            else:  # lazily: only find the run folders now
                await asyncio.to_thread(self.registry.discover)
        except Exception as exc:  # reported by /readyz and logged; /healthz stays up
            logger.exception("loading models from %s failed", self.settings.models)
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        self.metrics.models_loaded.set(len(self.registry.models))
        self.metrics.ready.set(1)
        self.ready = True

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        self.jobs.shutdown()
        if self._forward_executor is not None:
            self._forward_executor.shutdown(wait=False, cancel_futures=True)
            self._forward_executor = None
        self.metrics.close()

    @property
    def lazy(self) -> bool:
        """Whether models load on first use (a Ray Serve replica) rather than at start."""
        return self.model_loader is not None

    async def model(self, model_id: str, field: str = "model") -> ServedModel:
        """The served model ``model_id``; 404 naming ``field`` when unknown (or, when loading
        lazily, when its export does not load), 503 while loading."""
        if not self.ready:
            raise ApiError(503, "models are still loading; retry", headers={"Retry-After": "1"})
        shown = model_id if len(model_id) <= 100 else model_id[:100] + "..."
        unknown = ApiError(404, f"{field}: unknown model {shown!r} (see GET /models)", field)
        if self.model_loader is None:
            served = self.registry.get(model_id)
            if served is None:
                raise unknown
            return served
        if model_id not in self.registry.run_dirs:
            raise unknown
        try:
            return await self.model_loader(model_id)
        except _LOAD_ERRORS as exc:
            message = " ".join(str(exc).split())
            logger.warning("model %s not served: %s", model_id, message)
            self.registry.failed[model_id] = message  # /readyz lists it, /models leaves it out
            # the reason names server paths: it goes to the log, not to the client
            raise ApiError(
                404, f"{field}: model {shown!r} could not be loaded (see the server's log)", field
            ) from None

    def batcher(self, served: ServedModel, representation: str = "backbone") -> MicroBatcher:
        """The micro-batcher of one model and representation (a batch shares one forward)."""
        key = (served.id, representation)
        batcher = self._batchers.get(key)
        if batcher is None:
            if self._forward_executor is None:
                raise ApiError(503, "the service is not started", headers={"Retry-After": "1"})
            batcher = self.batcher_class(
                functools.partial(served.embed, representation=representation),
                self._forward_executor,
                self.settings.max_batch,
                self.settings.max_wait_ms / 1000.0,
                on_batch=self.metrics.observe_batch,
                on_queued=self.metrics.queue_seconds.observe,
            )
            self._batchers[key] = batcher
        return batcher


async def get_state(request: Request) -> ServiceState:
    # async on purpose: FastAPI runs a sync dependency in its thread pool, a thread hop per call
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]
