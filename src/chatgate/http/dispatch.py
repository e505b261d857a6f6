"""The JSON API's own front door: find the endpoint, run it, turn refusals into answers.

Starlette's application stack puts five layers between the server and a
handler (error middleware, exception middleware, router, route, request
wrapper), each wrapping ``send`` again; on a loaded worker they cost as much
as the token check itself. API endpoints are plain ``Request -> Response``
functions, so this looks them up by method and path segments and calls them
directly. Everything else — the pages, the docs, unknown paths (404), known
paths with the wrong method (405), trailing-slash redirects, the lifespan —
goes on to the Starlette application, which also holds every API route.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chatgate.errors import DomainError
from chatgate.http.errors import error_response, on_unexpected
from chatgate.http.routing import Endpoint

# A path cut at "/": literal segments, and None where a parameter goes.
_Shape = tuple[str | None, ...]


class ApiRouter:
    def __init__(self, endpoints: Sequence[Endpoint], fallback: ASGIApp) -> None:
        self._fallback = fallback
        self._exact: dict[tuple[str, str], Endpoint] = {}
        self._shaped: dict[tuple[str, int], list[tuple[_Shape, tuple[str, ...], Endpoint]]] = {}
        for endpoint in endpoints:
            parts = endpoint.path.split("/")
            names = tuple(part[1:-1] for part in parts if part.startswith("{"))
            if not names:
                self._exact[(endpoint.method, endpoint.path)] = endpoint
                continue
            shape = tuple(None if part.startswith("{") else part for part in parts)
            self._shaped.setdefault((endpoint.method, len(parts)), []).append((shape, names, endpoint))

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact, {}
        parts = path.split("/")
        for shape, names, endpoint in self._shaped.get((method, len(parts)), ()):
            values = []
            for expected, part in zip(shape, parts, strict=True):
                if expected is None:
                    if not part:
                        break
                    values.append(part)
                elif expected != part:
                    break
            else:
                return endpoint, dict(zip(names, values, strict=True))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.match(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self._fallback(scope, receive, send)
            return
        endpoint, scope["path_params"] = found
        scope["route"] = endpoint  # as Starlette's router leaves its Route: per-route metrics read its path
        request = Request(scope, receive)
        response: Response
        try:
            response = await endpoint.handler(request)
        except DomainError as refusal:
            response = error_response(refusal)
        except Exception as exc:
            response = await on_unexpected(request, exc)
        await response(scope, receive, send)
