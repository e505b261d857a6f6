"""Per-request metrics and the /metrics page, when CHATGATE_METRICS is on (nothing of this runs when off).

Requests are counted by route template (``/v1/projects/{pid}/users``),
never by raw path: the API dispatcher and Starlette's router both leave the
route they matched in the scope. The middleware's own work per request is
a clock read before and after, a wrapped ``send`` and one call to
``observe`` (a few microseconds).

/metrics answers only with ``Authorization: Bearer <CHATGATE_METRICS_TOKEN>``
when that token is set; without one, only to callers on this machine
(loopback) or listed in CHATGATE_TRUSTED_PROXIES, and never to a request
relayed for someone else (one with X-Forwarded-For or Forwarded).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable
from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.errors import Forbidden, NotAuthenticated
from chatgate.http.errors import error_response
from chatgate.http.requests import API_HEADERS, Handler, authorization_token

# Paths no route knows (404s, slash redirects) share one label.
UNMATCHED = "unmatched"

Observe = Callable[[str, str, int, float], None]  # route template, method, status, seconds
Render = Callable[[], tuple[bytes, str]]  # body, content type


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    path: str = route.path
    return path + "/{path}" if isinstance(route, Mount) else path


class RequestMetrics:
    def __init__(self, app: ASGIApp, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.observe(route_template(scope), scope["method"], status, perf_counter() - started)


def metrics_page(render: Render, token: str | None, trusted_proxies: Iterable[str]) -> Handler:
    trusted = _networks(trusted_proxies)

    async def metrics(request: Request) -> Response:
        if token is not None:
            given = authorization_token(request, ("bearer",))
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                refusal = error_response(NotAuthenticated("Send Authorization: Bearer <CHATGATE_METRICS_TOKEN>."))
                refusal.headers["WWW-Authenticate"] = "Bearer"
                return refusal
        elif not _nearby(request, trusted):
            return error_response(
                Forbidden("Metrics are served to this machine only; set CHATGATE_METRICS_TOKEN to scrape from afar.")
            )
        body, content_type = render()
        return Response(body, headers={**API_HEADERS, "Content-Type": content_type})

    return metrics


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks of CHATGATE_TRUSTED_PROXIES; anything else there ("*") trusts nobody here."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _nearby(request: Request, trusted: tuple[Network, ...]) -> bool:
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return address.is_loopback or any(address in network for network in trusted)
