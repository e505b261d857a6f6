"""Cross-origin calls to a project's API, from the origins the project lists.

A browser on another site may call ``/v1/projects/{pid}/…`` only when the
project's ``allowed_origins`` names that site; with none listed, browsers on
other sites get no CORS answer at all (servers, which send no Origin, are not
concerned). Credentials are never involved: tokens travel in ``Authorization``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.errors import Forbidden, StorageUnavailable
from chatgate.http.errors import error_response, unavailable

PROJECT_PREFIX = "/v1/projects/"
ALLOWED_METHODS = b"GET, POST, PATCH, DELETE"
ALLOWED_HEADERS = b"Authorization, Content-Type"
PREFLIGHT_MAX_AGE = b"600"
# Answer headers a page may read: when to retry after a 429, and that a resent message was not stored twice.
EXPOSED_HEADERS = b"Retry-After, Idempotent-Replayed"

OriginsOf = Callable[[str], Awaitable[list[str]]]


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"
    default_message = "This project does not accept calls from this origin; list it in allowed_origins."


class ProjectCors:
    def __init__(self, app: ASGIApp, own_origin: str, origins_of: OriginsOf) -> None:
        self.app = app
        self.own_origin = own_origin.encode()
        self.origins_of = origins_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        path: str = scope.get("path", "")
        if origin is None or origin == self.own_origin or not path.startswith(PROJECT_PREFIX):
            await self.app(scope, receive, send)
            return
        project_id = path[len(PROJECT_PREFIX) :].partition("/")[0]
        try:
            allowed = origin.decode("latin-1") in await self.origins_of(project_id)
        except StorageUnavailable as away:  # the database, not the request: 503, as everywhere else
            await unavailable(away)(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        if preflight:
            if not allowed:
                await error_response(OriginNotAllowed())(scope, receive, send)
                return
            headers = [
                *_allow(origin),
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", ALLOWED_HEADERS),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if not allowed:
            await self.app(scope, receive, send)  # no CORS headers: the browser keeps the answer from the page
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    *_allow(origin),
                    (b"access-control-expose-headers", EXPOSED_HEADERS),
                ]
            await send(message)

        await self.app(scope, receive, send_allowed)


def _allow(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
