"""``GET /models`` and ``GET /models/{id}/nemd`` (the NEMD report training wrote)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Response

from service.errors import ApiError
from service.schemas import ErrorBody, ModelEntry
from service.state import StateDep

router = APIRouter(tags=["models"])
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 503: {"model": ErrorBody}}


@router.get("/models", response_model=list[ModelEntry], responses=_ERRORS)
async def list_models(state: StateDep) -> list[dict[str, Any]]:
    """Every served model: id, method, dataset, input kind and shape, embedding size, epoch,
    metrics (the run's ``summary.json`` and ``model.json``)."""
    if not state.ready:
        raise ApiError(503, "models are still loading; retry", headers={"Retry-After": "1"})
    return [served.describe() for served in state.registry.models.values()]


def _read_report(path) -> bytes:
    raw = path.read_bytes()
    json.loads(raw)  # a malformed file is not served
    return raw


@router.get("/models/{model_id:path}/nemd", responses=_ERRORS)
async def model_nemd_report(model_id: str, state: StateDep) -> Response:
    """The NEMD report the run wrote (``nemd_report.json``), as stored: no recomputation."""
    served = state.model(model_id, field="model_id")
    path = served.nemd_report_path
    missing = ApiError(
        404, f"model_id: model {served.id!r} has no nemd_report.json", field="model_id"
    )
    if path is None:  # missing, or a link leaving ROOT
        raise missing
    try:
        raw = await asyncio.to_thread(_read_report, path)
    except (OSError, ValueError):
        raise missing from None
    return Response(raw, media_type="application/json")
