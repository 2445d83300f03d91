"""``GET /healthz`` (the process is up) and ``GET /readyz`` (the models are loaded).

With uvicorn worker processes (``--workers N``) a connection reaches one of them, so
``/readyz`` is ready only when all N are (counted through the multiprocess metrics,
:mod:`service.metrics`); else a client told "ready" could still be answered 503 by a process
that is loading."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.state import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Every model found under ROOT has been loaded (or failed to load)",
    responses={503: {"description": "still loading, or discovery failed"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    processes = state.settings.workers
    up = state.metrics.processes_ready() if processes > 1 else None
    ready = state.ready and (up is None or up >= processes)
    body: dict[str, Any] = {
        "status": "ready" if ready else ("error" if state.load_error else "loading"),
        # loaded at start, or (lazily, in Ray Serve) found and loaded on first use
        "models": len(state.registry.run_dirs if state.lazy else state.registry.models)
        if state.ready
        else 0,
        # ids only: the reasons name server paths, and this route needs no API key (see logs)
        "failed": sorted(state.registry.failed) if state.ready else [],
        "error": "loading the models failed; see the server's log" if state.load_error else None,
    }
    if up is not None:
        body["processes"] = {"ready": up, "of": processes}
    return JSONResponse(body, status_code=200 if ready else 503)
