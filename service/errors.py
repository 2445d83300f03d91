"""Every error the service returns: one JSON shape that names the offending field or item.

    {"error": "invalid_input", "field": "inputs[3]",
     "message": "inputs[3]: not valid base64 (...)",
     "errors": [{"field": "inputs[3]", "message": "..."}]}

``error`` is a stable code, ``field`` the first offending field or item (``null`` when the
request as a whole is wrong, e.g. an unknown route), ``errors`` every problem found (at most
:data:`MAX_REPORTED`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

__all__ = [
    "MAX_REPORTED",
    "ApiError",
    "error_body",
    "field_path",
    "install_error_handlers",
    "validation_error",
]

logger = logging.getLogger(__name__)

MAX_REPORTED = 10

_CODE_OF_STATUS = {
    400: "invalid_json",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_jobs",
    431: "headers_too_large",
    500: "internal_error",
    503: "not_ready",
}
CLIENT_CLOSED_REQUEST = 499  # nginx's code for a client that left before the answer


class ApiError(Exception):
    """An error a client caused (or a 503 while models load), sent as the JSON body above.

    Args:
        status: HTTP status.
        message: one sentence that starts with the field when there is one.
        field: the offending field or item, e.g. ``"model"``, ``"inputs[3]"``, ``"files[0]"``.
        errors: every problem, as ``{"field", "message"}``; default: just this one.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.errors = list(errors) if errors else [{"field": field, "message": message}]
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse(
            error_body(self.status, self.message, self.field, self.errors),
            status_code=self.status,
            headers=self.headers,
        )


def error_body(
    status: int,
    message: str,
    field: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "error": _CODE_OF_STATUS.get(status, "error"),
        "field": field,
        "message": message,
        "errors": list(errors or [{"field": field, "message": message}])[:MAX_REPORTED],
    }


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "inputs", 3)`` -> ``"inputs[3]"``; the ``body`` prefix is dropped."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _errors_of(raw: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in raw[:MAX_REPORTED]:
        where = field_path(err.get("loc", ()))
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "missing":
            message = "required field missing"
        out.append({"field": where, "message": f"{where}: {message}"})
    return out


def validation_error(exc: ValidationError | RequestValidationError) -> ApiError:
    """A 422 (or 400 for a body that is not JSON) naming the fields pydantic rejected."""
    raw = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in raw):
        return ApiError(400, "body: not valid JSON", "body")
    errors = _errors_of(raw) or [{"field": "body", "message": "body: invalid"}]
    return ApiError(422, errors[0]["message"], errors[0]["field"], errors)


def install_error_handlers(app: FastAPI) -> None:
    """Routes every error, FastAPI's and Starlette's included, through :func:`error_body`."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # the client left mid-request: nobody reads an answer, and it is not a server error
        logger.info("%s %s: the client disconnected", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # logged (with the request id) by the server's error log; the client gets the shape
        return JSONResponse(error_body(500, "internal error; see the server log"), 500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no route {request.url.path}", 405: f"{request.method} not allowed"}
        field = "body" if exc.status_code in (408, 413) else None
        text = message.get(exc.status_code, str(exc.detail))
        body = error_body(exc.status_code, text, field)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
