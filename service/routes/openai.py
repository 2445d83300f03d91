"""``POST /v1/embeddings``: the embeddings of ``/embed`` in OpenAI's request and response shape,
so clients written for that API can use a served encoder.

``input`` is one image (a data URI ``data:image/png;base64,...`` or plain base64) or a list of
them, or one vector or a list of vectors, in the model's input kind; each is checked as
``/embed`` checks it (errors name ``input[i]``). ``encoding_format: base64`` returns each
embedding as the base64 of its little-endian float32 bytes. ``usage`` counts one token per
input. The same micro-batcher serves both routes.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.errors import ApiError
from service.inputs import parse_items
from service.routes.embed import INLINE_ITEMS, validated_json
from service.schemas import ErrorBody, OpenAIEmbeddingsRequest, OpenAIEmbeddingsResponse
from service.state import StateDep

router = APIRouter(tags=["embed"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 422, 503)
}


def _as_list(value: Any) -> Any:
    """One input or a list of them, as a list (a flat list of numbers is one vector)."""
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return [value]
    return value


@router.post(
    "/v1/embeddings",
    response_model=OpenAIEmbeddingsResponse,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": OpenAIEmbeddingsRequest.model_json_schema()}
            },
        }
    },
)
async def embeddings(request: Request, state: StateDep) -> JSONResponse:
    """OpenAI-style embeddings: ``data[i].embedding`` for ``input[i]``, L2-normalised."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415, f"content-type: expected application/json, got {media!r}", "content-type"
        )
    parsed = await validated_json(request, OpenAIEmbeddingsRequest)
    served = await state.model(parsed.model)
    items = _as_list(parsed.input)
    args = (items, served.input_kind, served.input_shape, state.settings.max_items, "input")
    if isinstance(items, list) and len(items) > INLINE_ITEMS:
        inputs = await asyncio.to_thread(parse_items, *args)
    else:
        inputs = parse_items(*args)
    vectors = await state.batcher(served, parsed.representation).submit(inputs)
    state.metrics.embedded.labels(served.id).inc(len(inputs))
    if parsed.encoding_format == "base64":
        encoded: list[Any] = [
            base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors
        ]
    else:
        encoded = vectors.tolist()
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)
            ],
            "model": served.id,
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        }
    )
