"""``GET /models`` and ``GET /models/{id}/nemd`` (the NEMD report training wrote)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, Response

from pauc_ray.export import ExportError
from service.errors import ApiError
from service.registry import describe_unloaded
from service.schemas import ErrorBody, ModelEntry
from service.state import StateDep

logger = logging.getLogger(__name__)
router = APIRouter(tags=["models"])
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 503: {"model": ErrorBody}}


@router.get("/models", response_model=list[ModelEntry], responses=_ERRORS)
async def list_models(state: StateDep) -> list[dict[str, Any]]:
    """Every served model: id, method, dataset, input kind and shape, embedding size, epoch,
    metrics (the run's ``summary.json`` and ``model.json``)."""
    if not state.ready:
        raise ApiError(503, "models are still loading; retry", headers={"Retry-After": "1"})
    if state.lazy:  # Ray Serve: described from model.json, weights not loaded
        return await asyncio.to_thread(_describe_unloaded, state)
    return [served.describe() for served in state.registry.models.values()]


def _describe_unloaded(state) -> list[dict[str, Any]]:
    out = []
    for model_id, run_dir in state.registry.run_dirs.items():
        if model_id in state.registry.failed:  # found broken on an earlier request
            continue
        try:
            out.append(describe_unloaded(model_id, run_dir, state.registry.root))
        except (OSError, ValueError, ExportError) as exc:  # a broken export is not listed
            logger.warning("model %s not listed: %s", model_id, " ".join(str(exc).split()))
    return out


def _read_report(path) -> bytes:
    raw = path.read_bytes()
    json.loads(raw)  # a malformed file is not served
    return raw


@router.get("/models/{model_id:path}/nemd", responses=_ERRORS)
async def model_nemd_report(model_id: str, state: StateDep) -> Response:
    """The NEMD report the run wrote (``nemd_report.json``), as stored: no recomputation."""
    served = await state.model(model_id, field="model_id")
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
