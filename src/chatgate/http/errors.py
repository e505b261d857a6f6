"""The one place errors become HTTP answers (contract §0 error body)."""

from __future__ import annotations

import logging
import time

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chatgate.errors import DomainError, MethodNotAllowed, NotFound, PayloadTooLarge, RateLimited, StorageUnavailable

log = logging.getLogger("chatgate")


def error_body(code: str, message: str, extra: dict[str, object] | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if extra:
        error.update(extra)
    return orjson.dumps({"success": False, "msg": message, "error": error})


def error_response(exc: DomainError) -> Response:
    extra = exc.extra()
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        error_body(exc.code, exc.message, extra),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


async def on_domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def on_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    mapped: DomainError
    if exc.status_code == 404:
        mapped = NotFound()
    elif exc.status_code == 405:
        mapped = MethodNotAllowed()
    elif exc.status_code == 413:
        mapped = PayloadTooLarge()
    else:
        mapped = DomainError(str(exc.detail))
        mapped.status = exc.status_code
    return error_response(mapped)


# During an outage every request fails alike: one log line per this many seconds says so.
UNAVAILABLE_LOG_EVERY_SECONDS = 10.0
_unavailable_logged_at = -UNAVAILABLE_LOG_EVERY_SECONDS


def unavailable(exc: StorageUnavailable) -> Response:
    global _unavailable_logged_at
    now = time.monotonic()
    if now - _unavailable_logged_at >= UNAVAILABLE_LOG_EVERY_SECONDS:
        _unavailable_logged_at = now
        log.warning("database unavailable, answering 503: %s", exc.reason)
    return Response(
        error_body(exc.code, exc.message),
        status_code=exc.status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Retry-After": "5"},
    )


async def on_storage_unavailable(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StorageUnavailable)
    return unavailable(exc)


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, StorageUnavailable):
        return unavailable(exc)
    # A bug: log it with its traceback, answer without internals.
    log.exception("unhandled error", exc_info=exc)
    return Response(
        error_body("internal_error", "Something went wrong on our side."),
        status_code=500,
        media_type="application/json",
    )
