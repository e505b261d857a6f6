"""The API's front door finds endpoints by method and path segments, and leaves everything else to Starlette."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from async_tools import run_async
from chatgate.errors import ProjectNotFound
from chatgate.http.dispatch import ApiRouter
from chatgate.http.routing import Endpoint


async def ok(_request: Request) -> Response:
    return Response(b"ok")


async def refuse(_request: Request) -> Response:
    raise ProjectNotFound()


async def crash(_request: Request) -> Response:
    raise RuntimeError("a bug")


ENDPOINTS = [
    Endpoint("POST", "/v1/auth/signin", ok, "s", "t"),
    Endpoint("GET", "/v1/projects/{pid}/auth/me", ok, "s", "t"),
    Endpoint("GET", "/v1/projects/{pid}/users/{user_ref}", ok, "s", "t"),
    Endpoint("GET", "/v1/projects/{pid}/refuse", refuse, "s", "t"),
    Endpoint("GET", "/v1/projects/{pid}/crash", crash, "s", "t"),
]


async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
    await Response(b"fallback", status_code=404)(scope, receive, send)


router = ApiRouter(ENDPOINTS, fallback)


def test_paths_match_by_method_and_segments() -> None:
    found = router.match("GET", "/v1/projects/p1/users/u%40x")
    assert found is not None and found[1] == {"pid": "p1", "user_ref": "u%40x"}
    found = router.match("POST", "/v1/auth/signin")
    assert found is not None and found[1] == {}
    assert router.match("GET", "/v1/auth/signin") is None  # wrong method: Starlette answers 405
    assert router.match("GET", "/v1/projects//auth/me") is None  # an empty parameter is no parameter
    assert router.match("GET", "/v1/projects/p1/auth/me/") is None  # Starlette redirects the slash
    assert router.match("GET", "/v1/projects/p1/auth/you") is None


def answer(path: str) -> tuple[int, bytes]:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    run_async(router(scope, receive, send))  # type: ignore[arg-type]
    return int(sent[0]["status"]), bytes(sent[1]["body"])  # type: ignore[call-overload]


def test_refusals_and_bugs_become_error_bodies_and_unknown_paths_fall_through() -> None:
    assert answer("/v1/projects/p1/auth/me") == (200, b"ok")
    status, body = answer("/v1/projects/p1/refuse")
    assert status == 404 and b'"code":"project_not_found"' in body
    status, body = answer("/v1/projects/p1/crash")
    assert status == 500 and b'"code":"internal_error"' in body and b"a bug" not in body
    assert answer("/elsewhere") == (404, b"fallback")
