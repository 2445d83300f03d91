"""One ASGI layer around the app: request ids, request metrics and the access log, the optional
API key, the body size limit.

Pure ASGI (no ``BaseHTTPMiddleware``), so it adds no task per request and sees the status of
every response, the 401s and 413s it sends itself included. The route label is the matched
route's template (``/models/{model_id:path}/nemd``), read from the scope after routing.

Every request gets an id: the client's ``X-Request-ID`` when it is 1-128 printable ASCII
characters, else a new one. It is echoed in the response's ``X-Request-ID``, set in
:data:`request_id` for the request's duration (:class:`RequestIdFilter` adds it to every log
record as ``request_id``) and written in the access line (logger ``service.access``, one line
per request when ``access_log`` is on).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.state import ServiceState

__all__ = ["OPEN_PATHS", "REQUEST_ID_HEADER", "RequestIdFilter", "ServiceMiddleware", "request_id"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
API_KEY_HEADER = "x-api-key"
REQUEST_ID_HEADER = "x-request-id"
_GOOD_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces: safe in logs
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_logger = logging.getLogger("service.access")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, ``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _request_id(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER)
    return given if given is not None and _GOOD_ID.fullmatch(given) else uuid.uuid4().hex


def _presented_key(headers: Headers) -> str | None:
    key = headers.get(API_KEY_HEADER)
    if key is not None:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before responding, the server sends a 500
        metrics = self.state.metrics
        metrics.in_flight.inc()
        rid = _request_id(Headers(scope=scope))
        token = request_id.set(rid)

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            await send(message)

        try:
            await self._handle(scope, receive, send_and_record)
        finally:
            seconds = time.perf_counter() - started
            metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.observe_request(route, scope["method"], status, seconds)
            if self.state.settings.access_log:
                access_logger.info(
                    "%s %s %s %d %.1f ms",
                    rid,
                    scope["method"],
                    scope["path"],
                    status,
                    1e3 * seconds,
                )
            request_id.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        settings = self.state.settings
        header_bytes = len(scope.get("raw_path") or b"") + sum(
            len(k) + len(v) + 4 for k, v in scope["headers"]
        )
        if header_bytes > settings.max_header_bytes:  # whatever the HTTP parser let through
            response = JSONResponse(
                error_body(
                    431,
                    f"headers: {header_bytes} bytes, at most {settings.max_header_bytes}",
                    "headers",
                ),
                status_code=431,
            )
            await response(scope, receive, send)
            return
        if settings.api_key and scope["path"] not in OPEN_PATHS:
            key = _presented_key(headers)
            # header values arrive as bytes decoded latin-1: back to the bytes the client sent,
            # compared with the key's UTF-8, so a key may be any UTF-8 text
            if key is None or not hmac.compare_digest(
                key.encode("latin-1", "replace"), settings.api_key.encode("utf-8")
            ):
                message = (
                    "missing API key: send it as X-API-Key or Authorization: Bearer"
                    if key is None
                    else "wrong API key"
                )
                response = JSONResponse(
                    error_body(401, message, API_KEY_HEADER),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        limit = settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = JSONResponse(
                error_body(413, f"body: {declared} bytes, at most {limit} allowed", "body"),
                status_code=413,
            )
            await response(scope, receive, send)
            return
        received = 0
        body_done = False
        deadline = time.monotonic() + settings.body_timeout_s

        async def receive_limited() -> Message:
            nonlocal received, body_done
            if body_done:  # later reads wait for a disconnect: no deadline for those
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HTTPException(
                    408, f"body: not received within {settings.body_timeout_s:g} s"
                ) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    # raised inside the route's body read; the app's handler answers 413
                    raise HTTPException(413, f"body: more than {limit} bytes, at most {limit}")
            return message

        await self.app(scope, receive_limited, send)
