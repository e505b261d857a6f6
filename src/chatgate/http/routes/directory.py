"""Staff views of a project's end users, their sessions and the audit log (contract §4.6); signing a user out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.crypto.secrets import api_key_prefix
from chatgate.domain.models import CreatedVia
from chatgate.errors import ValidationFailed
from chatgate.http import presenters
from chatgate.http.requests import authorization_token, caller_of, json, query_int, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import AuditListOut, EndUserOut, SessionListOut, SignedOutOut, UserListOut
from chatgate.services.bundle import Services


def _limit(request: Request, default: int = 50) -> int:
    return query_int(request, "limit", 1, 200, default)


def _api_key(request: Request) -> str | None:
    """A project API key sent as ``Authorization: Bearer <key>``, told from a session token by its prefix."""
    presented = authorization_token(request, ("bearer",))
    return presented if presented is not None and api_key_prefix(presented) is not None else None


def endpoints(services: Services) -> list[Endpoint]:
    directory = services.directory

    async def list_users(request: Request) -> Response:
        pid = request.path_params["pid"]
        raw_via = request.query_params.get("created_via")
        try:
            created_via = CreatedVia(raw_via) if raw_via else None
        except ValueError as exc:
            known = ", ".join(v.value for v in CreatedVia)
            raise ValidationFailed({"created_via": f"must be one of {known}"}) from exc
        limit = _limit(request)
        api_key = _api_key(request)
        caller = caller_of(request) if api_key else await session_caller(services, request)
        page = await directory.list_users(
            pid,
            caller,
            created_via=created_via,
            query=request.query_params.get("q") or None,
            limit=limit,
            cursor=request.query_params.get("cursor"),
            api_key=api_key,
        )
        return json(
            {
                "users": [presenters.end_user(u) for u in page.users],
                "seats": {"used": page.seats_used, "limit": page.seat_limit},
                "next_cursor": page.next_cursor,
            }
        )

    async def get_user(request: Request) -> Response:
        pid, ref = request.path_params["pid"], request.path_params["user_ref"]
        api_key = _api_key(request)
        caller = caller_of(request) if api_key else await session_caller(services, request)
        user = await directory.get_user(pid, ref, caller, api_key)
        return json(presenters.end_user(user))

    async def user_sessions(request: Request) -> Response:
        pid, ref = request.path_params["pid"], request.path_params["user_ref"]
        sessions = await directory.user_sessions(pid, ref, await session_caller(services, request))
        return json({"sessions": [presenters.session(s) for s in sessions]})

    async def sign_out_everywhere(request: Request) -> Response:
        pid, ref = request.path_params["pid"], request.path_params["user_ref"]
        revoked = await directory.sign_out_everywhere(pid, ref, await session_caller(services, request))
        return json({"revoked": revoked})

    async def audit_log(request: Request) -> Response:
        pid = request.path_params["pid"]
        limit = _limit(request, 100)
        caller = await session_caller(services, request)
        page = await directory.audit_log(
            pid,
            caller,
            action=request.query_params.get("action"),
            limit=limit,
            cursor=request.query_params.get("cursor"),
        )
        return json({"events": [presenters.audit_event(e) for e in page.events], "next_cursor": page.next_cursor})

    return [
        Endpoint(
            "GET",
            "/v1/projects/{pid}/users",
            list_users,
            "List end users with seat usage (staff, or an org.user API key)",
            "users",
            response=UserListOut,
            auth="session",
            alt_auth=("apiKey",),
            errors=(403, 404, 422),
            query=(
                ("created_via", "anonymous, external_auth_code, custom_token, customer_login, email, admin"),
                ("q", "matches email, name or externalId"),
                ("limit", "1-200, default 50"),
                ("cursor", "next_cursor of the previous page"),
            ),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/users/{user_ref}",
            get_user,
            "One end user by _id or externalId (staff, or an org.user API key)",
            "users",
            response=EndUserOut,
            auth="session",
            alt_auth=("apiKey",),
            errors=(403, 404),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/users/{user_ref}/sessions",
            user_sessions,
            "An end user's live sessions, newest first",
            "users",
            response=SessionListOut,
            auth="session",
            errors=(403, 404),
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/users/{user_ref}/logout",
            sign_out_everywhere,
            "End every session of an end user at once; their sockets close",
            "users",
            response=SignedOutOut,
            auth="session",
            errors=(403, 404),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/audit",
            audit_log,
            "Authentication audit log, newest first (owners)",
            "audit",
            response=AuditListOut,
            auth="session",
            errors=(403, 404, 422),
            query=(
                ("action", "only this action tag"),
                ("limit", "1-200, default 100"),
                ("cursor", "next_cursor of the previous page"),
            ),
        ),
    ]
