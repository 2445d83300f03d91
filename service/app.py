"""``create_app(settings)``: the FastAPI app. Nothing is built or loaded at import time.

    from service.app import create_app
    from service.settings import settings_from
    app = create_app(settings_from(models=Path("runs")))

The lifespan starts the parts (:class:`service.state.ServiceState`): the forward thread, the
NEMD job pool and, in a background thread, the models; ``/healthz`` answers at once and
``/readyz`` once every model found is loaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import pauc_ray
from service.batching import MicroBatcher
from service.errors import install_error_handlers
from service.middleware import ServiceMiddleware
from service.registry import ServedModel
from service.routes import datasets, embed, health, metrics, models, nemd, openai
from service.settings import ServiceSettings
from service.state import ServiceState

__all__ = ["create_app"]

DESCRIPTION = """Embeddings and NEMD reports (Eq. 3 of the PAUC paper) from the models that
training exported under ROOT. Errors are JSON: `{"error", "field", "message", "errors"}`.
When `PAUC_API_KEY` is set, every route but `/healthz` and `/readyz` needs it in `X-API-Key`
(or `Authorization: Bearer`)."""


def create_app(
    settings: ServiceSettings,
    *,
    load_in_background: bool = True,
    model_loader: Callable[[str], Awaitable[ServedModel]] | None = None,
    batcher_class: Callable[..., Any] = MicroBatcher,
) -> FastAPI:
    """The app serving every export under ``settings.models``.

    Args:
        settings: checked settings (:func:`service.settings.settings_from`).
        load_in_background: load models in a thread after start-up (``/readyz`` says when
            done); False loads them before the app accepts requests.
        model_loader, batcher_class: how a Ray Serve replica loads models (lazily, through
            Serve's multiplexing) and batches requests (``@serve.batch``); the defaults load
            every model at start and batch with :class:`~service.batching.MicroBatcher`
            (:mod:`service.ray_serve` says why both exist).
    """
    state = ServiceState(settings, model_loader=model_loader, batcher_class=batcher_class)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start(load_in_background)
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="PAUC service",
        version=pauc_ray.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    for module in (health, models, datasets, embed, openai, nemd, metrics):
        app.include_router(module.router)
    app.add_middleware(ServiceMiddleware, state=state)
    if settings.api_key:
        _declare_api_key(app)
    return app


def _declare_api_key(app: FastAPI) -> None:
    """The API key in the OpenAPI schema: ``X-API-Key`` or ``Authorization: Bearer``, needed on
    every route but the health checks (enforced by the middleware, declared here)."""
    from fastapi.openapi.utils import get_openapi

    from service.middleware import OPEN_PATHS

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            }
            schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
            for path in OPEN_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
