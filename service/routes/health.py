"""``GET /healthz`` (the process is up) and ``GET /readyz`` (the models are loaded)."""

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
    body: dict[str, Any] = {
        "status": "ready" if state.ready else ("error" if state.load_error else "loading"),
        # loaded at start, or (lazily, in Ray Serve) found and loaded on first use
        "models": len(state.registry.run_dirs if state.lazy else state.registry.models)
        if state.ready
        else 0,
        # ids only: the reasons name server paths, and this route needs no API key (see logs)
        "failed": sorted(state.registry.failed) if state.ready else [],
        "error": "loading the models failed; see the server's log" if state.load_error else None,
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)
