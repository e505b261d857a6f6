"""Tools for a project's owners and admins: the token tester."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.http import presenters
from chatgate.http.requests import json, parse_body, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import TokenCheckOut, TokenCheckRequest
from chatgate.services.bundle import Services


def endpoints(services: Services) -> list[Endpoint]:
    async def token_check(request: Request) -> Response:
        pid = request.path_params["pid"]
        body = await parse_body(request, TokenCheckRequest)
        caller = await session_caller(services, request)
        check = await services.token_check.check(pid, body.token, body.method, caller)
        return json(presenters.token_check(check))

    return [
        Endpoint(
            "POST",
            "/v1/projects/{pid}/token-check",
            token_check,
            "What a sign-in with this customer token would do now; signs no one in, changes nothing",
            "users",
            body=TokenCheckRequest,
            response=TokenCheckOut,
            auth="session",
            errors=(400, 403, 404, 422, 429),
        ),
    ]
