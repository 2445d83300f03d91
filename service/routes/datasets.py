"""``GET /datasets``: the datasets registered under ``ROOT/datasets`` (for ``POST /nemd``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from service.schemas import DatasetEntry
from service.state import StateDep

router = APIRouter(tags=["datasets"])


@router.get("/datasets", response_model=list[DatasetEntry])
async def list_datasets(state: StateDep) -> list[dict[str, Any]]:
    return await asyncio.to_thread(state.datasets.describe)
