"""create_app(settings): wires storage, crypto, services, routes and pages. No globals."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from chatgate.crypto.passwords import PasswordHasherPool
from chatgate.crypto.secrets import SecretBox, ServerKeys, load_or_create_server_key
from chatgate.crypto.tokens import SessionTokenCodec
from chatgate.errors import DomainError
from chatgate.http import errors
from chatgate.http.cors import ProjectCors
from chatgate.http.dispatch import ApiRouter
from chatgate.http.headers import SecurityHeaders
from chatgate.http.limits import BodyLimit
from chatgate.http.requests import json
from chatgate.http.routes import directory, end_users, keys, projects, staff
from chatgate.http.routing import Endpoint, docs_page, openapi_document, starlette_routes
from chatgate.ratelimit import RateLimiter
from chatgate.services.bundle import Services
from chatgate.services.context import ServiceContext
from chatgate.services.maintenance import EVERY_SECONDS
from chatgate.settings import Settings
from chatgate.storage.open import open_storage
from chatgate.web import pages

log = logging.getLogger("chatgate")


def build_services(settings: Settings) -> Services:
    master = load_or_create_server_key(settings.data_dir, settings.server_key)
    server_keys = ServerKeys.from_master(master)
    ctx = ServiceContext(
        settings=settings,
        storage=open_storage(settings.database_url, settings.db_pool_size),
        passwords=PasswordHasherPool(settings.password_hash_concurrency),
        session_codec=SessionTokenCodec(server_keys.session_signing),
        secret_box=SecretBox(server_keys.secret_encryption),
        limiter=RateLimiter(settings.rate_rules),
    )
    return Services.build(ctx)


def api_endpoints(services: Services) -> list[Endpoint]:
    # Routes are matched in order: the end users' ways in, hit on every page load, go first.
    return [
        *end_users.endpoints(services),
        *staff.endpoints(services),
        *projects.endpoints(services),
        *keys.endpoints(services),
        *directory.endpoints(services),
    ]


def create_app(settings: Settings) -> ASGIApp:
    services = build_services(settings)
    endpoints = api_endpoints(services)
    document = openapi_document(endpoints, settings.public_url, version("chatgate"))

    async def healthz(_request: Request) -> Response:
        health = await services.health.check()
        if health.ok:
            return json({"status": "ok"})
        return json({"status": "unavailable", "reason": health.reason}, status=503)

    async def openapi_json(_request: Request) -> Response:
        return json(document)

    async def docs(_request: Request) -> Response:
        return docs_page(document)

    async def housekeeping() -> None:
        while True:
            try:
                await services.maintenance.prune()
            except Exception:  # a failed prune is retried next round; it must not stop the server
                if (await services.health.check()).ok:
                    log.exception("housekeeping failed")
                # else the health check has said, in one line, that the database is away
            await asyncio.sleep(EVERY_SECONDS)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await services.ctx.storage.start()
        # Everything loaded so far lives as long as the server: keep it out of the
        # collector, whose full passes over it took ~40 ms each (a p99 of its own).
        gc.collect()
        gc.freeze()
        pruning = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            pruning.cancel()
            await services.ctx.storage.close()

    # The API routes are here too: for 404/405 answers and redirects, which ApiRouter leaves to Starlette.
    site = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            *starlette_routes(endpoints),
            *pages.routes(services),
        ],
        exception_handlers={
            DomainError: errors.on_domain_error,
            HTTPException: errors.on_http_exception,
            Exception: errors.on_unexpected,
        },
        lifespan=lifespan,
    )

    async def allowed_origins(project_id: str) -> list[str]:
        return await services.projects.allowed_origins(project_id)

    api = BodyLimit(ApiRouter(endpoints, fallback=site), max_bytes=settings.max_body_bytes)
    return SecurityHeaders(ProjectCors(api, origin_of(settings.public_url), allowed_origins))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(Settings.from_env())
