"""Signing secrets and API keys (contract §3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.errors import InvalidApiKey
from chatgate.http import presenters
from chatgate.http.requests import authorization_token, caller_of, json, parse_body, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import ApiKeyCreate, ApiKeyOut, CustomerSettingsOut, SecretOut
from chatgate.services.bundle import Services


def endpoints(services: Services) -> list[Endpoint]:
    keys = services.keys

    async def generate_secret(request: Request) -> Response:
        pid = request.path_params["pid"]
        caller = await session_caller(services, request)
        secret = await keys.generate_signing_secret(pid, caller)
        return json({"jwtSecret": secret})

    async def create_api_key(request: Request) -> Response:
        pid = request.path_params["pid"]
        body = await parse_body(request, ApiKeyCreate)
        caller = await session_caller(services, request)
        created = await keys.create_api_key(pid, body.name, list(body.roles), body.expires_in_days, caller)
        return json(presenters.api_key(created.api_key, created.key), 201)

    async def list_api_keys(request: Request) -> Response:
        pid = request.path_params["pid"]
        caller = await session_caller(services, request)
        found = await keys.list_api_keys(pid, caller)
        return json({"apikeys": [presenters.api_key(k) for k in found]})

    async def revoke_api_key(request: Request) -> Response:
        pid, key_id = request.path_params["pid"], request.path_params["key_id"]
        caller = await session_caller(services, request)
        await keys.revoke_api_key(pid, key_id, caller)
        return json({"success": True, "id": key_id, "revoked": True})

    async def customer_settings(request: Request) -> Response:
        presented = authorization_token(request, ("bearer",))
        if presented is None:
            raise InvalidApiKey("Send the API key as Authorization: Bearer <key>.")
        secret = await keys.customer_settings_secret(presented, caller_of(request))
        return json({"data": {"type": "customer_settings", "attributes": {"secret": secret}}})

    managed = (403, 404)
    return [
        Endpoint(
            "POST",
            "/v1/{pid}/keys/generate",
            generate_secret,
            "Generate the project's signing secret (the old one stops verifying)",
            "keys",
            response=SecretOut,
            auth="session",
            errors=managed,
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/apikeys",
            create_api_key,
            "Create an API key (shown once)",
            "keys",
            body=ApiKeyCreate,
            response=ApiKeyOut,
            status=201,
            auth="session",
            errors=(400, 422, *managed),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/apikeys",
            list_api_keys,
            "List API keys (never the key itself)",
            "keys",
            auth="session",
            errors=managed,
        ),
        Endpoint(
            "DELETE",
            "/v1/projects/{pid}/apikeys/{key_id}",
            revoke_api_key,
            "Revoke an API key",
            "keys",
            auth="session",
            errors=managed,
        ),
        Endpoint(
            "GET",
            "/v1/auth/customer/settings",
            customer_settings,
            "Kustomer: read the signing secret with an org.admin + org.user API key",
            "keys",
            response=CustomerSettingsOut,
            auth="apiKey",
            errors=(403,),
        ),
    ]
