"""Reading requests: JSON bodies into schemas, tokens out of headers, the caller's address."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from chatgate.errors import MalformedJson, NotAuthenticated, ValidationFailed
from chatgate.services.bundle import Services
from chatgate.services.context import Caller

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

SESSION_SCHEMES = ("jwt", "bearer")


async def parse_body(request: Request, model: type[M], *, optional: bool = False) -> M:
    raw = await request.body()
    if not raw.strip() and optional:
        return model()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson() from exc
    if not isinstance(data, dict):
        raise MalformedJson()
    nul = _nul_path(data)
    if nul is not None:
        raise ValidationFailed({nul: "must not contain NUL characters"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_fields(exc)) from exc


def _nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in a JSON value, if anywhere (PostgreSQL cannot store it)."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path or "body"
        found = _nul_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def parse_query(params: dict[str, Any], model: type[M]) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed(_fields(exc)) from exc


def _fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        fields.setdefault(name, message)
    return fields


def authorization_token(request: Request, schemes: tuple[str, ...] = SESSION_SCHEMES) -> str | None:
    """The token of ``Authorization: JWT <t>`` or ``Bearer <t>`` (scheme case-insensitive)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in schemes or not token.strip():
        return None
    return token.strip()


def require_token(request: Request) -> str:
    token = authorization_token(request)
    if token is None:
        raise NotAuthenticated()
    return token


def caller_of(request: Request) -> Caller:
    return Caller(request.client.host if request.client else "unknown")


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a call in the worker pool: for anything that waits long (argon2, the network)."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def call(services: Services, fn: Callable[..., T], *args: Any) -> T:
    """Run a service call that may write: in the next group commit on SQLite, else in the worker pool."""
    return await services.ctx.db.writing(fn, *args)


async def call_read(services: Services, fn: Callable[..., T], *args: Any) -> T:
    """Run a service call that only reads: on the event loop unless CHATGATE_DB_IN_THREADS is set."""
    return await services.ctx.db.reading(fn, *args)


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


Handler = Callable[[Request], Awaitable[Response]]
