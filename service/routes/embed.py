"""``POST /embed``: L2-normalised embeddings, from JSON (base64 images or vectors) or from a
multipart upload of image files (form field ``model`` plus one or more file fields ``files``).

The body is parsed here rather than by FastAPI, because one route takes two content types and
because every input is checked against the model it is for. Concurrent requests are
micro-batched (:mod:`service.batching`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pauc_ray.model.backbones import REPRESENTATIONS
from service.errors import ApiError, validation_error
from service.inputs import parse_items, parse_uploads
from service.registry import ServedModel
from service.schemas import EmbedRequest, EmbedResponse, ErrorBody
from service.state import ServiceState, StateDep

router = APIRouter(tags=["embed"])

INLINE_ITEMS = 16  # decode up to this many inputs on the event loop; more go to a thread

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": EmbedRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["model", "files"],
                "properties": {
                    "model": {"type": "string", "description": "model id"},
                    "representation": {
                        "type": "string",
                        "enum": list(REPRESENTATIONS),
                        "default": "backbone",
                    },
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "PNG or JPEG files of the model's input size",
                    },
                },
            }
        },
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 422, 503)
}


def load_json(body: bytes) -> Any:
    """The parsed JSON body; ``ApiError(400)`` when it is not JSON."""
    if not body:
        raise ApiError(400, "body: empty; expected a JSON object", "body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(400, f"body: not valid JSON ({reason})", "body") from None


async def validated_json(request: Request, schema: type[BaseModel]) -> Any:
    """The JSON body as ``schema``: 400 when it is not JSON, 422 naming the field otherwise."""
    payload = load_json(await request.body())
    if not isinstance(payload, dict):
        raise ApiError(422, f"body: expected a JSON object, got {type(payload).__name__}", "body")
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _from_json(request: Request, state: ServiceState) -> tuple[ServedModel, str, Any]:
    parsed = await validated_json(request, EmbedRequest)
    served = await state.model(parsed.model)
    args = (parsed.inputs, served.input_kind, served.input_shape, state.settings.max_items)
    if isinstance(parsed.inputs, list) and len(parsed.inputs) > INLINE_ITEMS:
        return served, parsed.representation, await asyncio.to_thread(parse_items, *args)
    return served, parsed.representation, parse_items(*args)


async def _from_multipart(request: Request, state: ServiceState) -> tuple[ServedModel, str, Any]:
    settings = state.settings
    try:
        form = await request.form(
            max_files=settings.max_items, max_fields=8, max_part_size=settings.max_body_bytes
        )
    except HTTPException as exc:
        if exc.status_code != 400:
            raise
        field = "files" if "files" in str(exc.detail).lower() else "body"
        raise ApiError(422 if field == "files" else 400, f"{field}: {exc.detail}", field) from None
    try:
        model = form.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(422, "model: required form field missing", "model")
        representation = form.get("representation", "backbone")
        if representation not in REPRESENTATIONS:
            raise ApiError(
                422,
                f"representation: expected one of {list(REPRESENTATIONS)}, got {representation!r}",
                "representation",
            )
        known = ("model", "representation")
        unknown = sorted(
            {k for k, v in form.multi_items() if k not in known and isinstance(v, str)}
        )
        if unknown:
            raise ApiError(422, f"{unknown[0]}: unknown form field", unknown[0])
        served = await state.model(model)
        if served.input_kind != "image":
            raise ApiError(
                422,
                f"files: model {served.id!r} takes vectors; send them as JSON inputs",
                "files",
            )
        files = [
            (value.filename or "", await value.read())
            for _, value in form.multi_items()
            if isinstance(value, UploadFile)
        ]
    finally:
        await form.close()
    args = (files, served.input_shape, settings.max_items)
    if len(files) > INLINE_ITEMS:
        return served, representation, await asyncio.to_thread(parse_uploads, *args)
    return served, representation, parse_uploads(*args)


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def embed(request: Request, state: StateDep) -> JSONResponse:
    """Embeddings of raw inputs, one L2-normalised row per input, in input order: the
    backbone's features by default, the projection head's output with
    ``representation=projection``; the response says which."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        served, representation, inputs = await _from_multipart(request, state)
    elif media == "application/json" or media.endswith("+json"):
        served, representation, inputs = await _from_json(request, state)
    else:
        raise ApiError(
            415,
            f"content-type: expected application/json or multipart/form-data, got {media!r}",
            "content-type",
        )
    embeddings = await state.batcher(served, representation).submit(inputs)
    state.metrics.embedded.labels(served.id).inc(len(inputs))
    return JSONResponse(
        {
            "model": served.id,
            "representation": representation,
            "dimension": int(embeddings.shape[1]),
            "count": len(embeddings),
            "embeddings": embeddings.tolist(),
        }
    )
