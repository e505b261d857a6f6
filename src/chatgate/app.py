"""create_app(settings): wires storage, crypto, services, routes and pages. No globals."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING
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
from chatgate.errors import DomainError, StorageUnavailable
from chatgate.http import errors
from chatgate.http.cors import ProjectCors
from chatgate.http.dispatch import ApiRouter
from chatgate.http.headers import SecurityHeaders
from chatgate.http.limits import BodyLimit
from chatgate.http.live_socket import live_route
from chatgate.http.request_metrics import RequestMetrics, metrics_page
from chatgate.http.requests import json
from chatgate.http.routes import admin_tools, conversations, directory, end_users, keys, projects, staff, webhooks
from chatgate.http.routing import Endpoint, docs_page, openapi_document, starlette_routes
from chatgate.services.bundle import Services
from chatgate.services.caches import ProjectCache, SessionCache, SessionUserCache
from chatgate.services.context import ServiceContext
from chatgate.services.live import LiveHub
from chatgate.services.maintenance import EVERY_SECONDS
from chatgate.services.rate_limits import RateLimiter
from chatgate.services.sign_in_metrics import NoSignInMetrics, SignInMetrics
from chatgate.settings import Settings
from chatgate.storage.open import StorageAdapter, open_event_feed, open_rate_counter, open_storage
from chatgate.storage.sqlite import SqliteStorage
from chatgate.web import admin, pages
from chatgate.webhook_sender import HttpWebhookSender

if TYPE_CHECKING:
    from chatgate.metrics import Metrics

log = logging.getLogger("chatgate")
# How often each worker notes its PostgreSQL pool's use for /metrics.
POOL_REPORT_SECONDS = 5


def build_services(
    settings: Settings, storage: StorageAdapter | None = None, sign_ins: SignInMetrics | None = None
) -> Services:
    master = load_or_create_server_key(settings.data_dir, settings.server_key)
    server_keys = ServerKeys.from_master(master)
    storage = storage or open_storage(settings.database_url, settings.db_pool_size)
    counter = open_rate_counter(settings.redis_url, storage, server_keys.redis_namespace)
    live = LiveHub(open_event_feed(storage))
    # PostgreSQL reads are round trips worth saving; SQLite's are not (services/caches.py).
    caching = not isinstance(storage, SqliteStorage)
    ctx = ServiceContext(
        settings=settings,
        storage=storage,
        passwords=PasswordHasherPool(settings.password_hash_concurrency),
        session_codec=SessionTokenCodec(server_keys.session_signing),
        secret_box=SecretBox(server_keys.secret_encryption),
        limiter=RateLimiter(settings.rate_rules, counter, server_keys.rate_limit_pseudonyms),
        live=live,
        projects=ProjectCache(storage, live, enabled=caching),
        sessions=SessionCache(storage, live, enabled=caching),
        session_users=SessionUserCache(storage, live, enabled=caching),
        webhook_sender=HttpWebhookSender(settings.webhook_allow_private),
        sign_ins=sign_ins or NoSignInMetrics(),
    )
    # What a transaction of this process commits reaches this process's sockets at once;
    # the feed brings it to the other processes.
    storage.committed.connect(live.committed)
    return Services.build(ctx)


def api_endpoints(services: Services) -> list[Endpoint]:
    # Routes are matched in order: the end users' ways in, hit on every page load, go first.
    return [
        *end_users.endpoints(services),
        *staff.endpoints(services),
        *projects.endpoints(services),
        *keys.endpoints(services),
        *directory.endpoints(services),
        *admin_tools.endpoints(services),
        *conversations.endpoints(services),
        *webhooks.endpoints(services),
    ]


def create_app(settings: Settings) -> ASGIApp:
    storage = open_storage(settings.database_url, settings.db_pool_size)
    # prometheus_client is imported only when metrics are on (and after chatgate serve has set its directory).
    metrics = _metrics() if settings.metrics else None
    services = build_services(settings, storage, metrics)
    endpoints = api_endpoints(services)
    document = openapi_document(
        endpoints,
        settings.public_url,
        version("chatgate"),
        metrics_page=settings.metrics,
        staff_basic=settings.staff_basic_auth,
    )

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

    def report_pool() -> None:
        usage = storage.pool_usage()
        if metrics is not None and usage is not None:
            metrics.pool_in_use(usage.size, usage.idle, usage.max_size)

    async def keep_reporting_pool() -> None:
        # Every worker, so that the scrape (answered by one of them) sees all the pools.
        while True:
            report_pool()
            await asyncio.sleep(POOL_REPORT_SECONDS)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await storage.start()
        await services.ctx.live.start()
        # Everything loaded so far lives as long as the server: keep it out of the
        # collector, whose full passes over it took ~40 ms each (a p99 of its own).
        gc.collect()
        gc.freeze()
        # Every process sends the webhook deliveries that are due; claims keep them from sending one twice.
        background = [asyncio.create_task(housekeeping()), asyncio.create_task(services.webhook_dispatcher.run())]
        if metrics is not None and storage.pool_usage() is not None:
            background.append(asyncio.create_task(keep_reporting_pool()))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await services.ctx.webhook_sender.close()
            await services.ctx.live.close()
            await services.ctx.limiter.close()
            await storage.close()

    def render_metrics() -> tuple[bytes, str]:
        assert metrics is not None
        report_pool()
        return metrics.render()

    system_routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    if metrics is not None:
        page = metrics_page(render_metrics, settings.metrics_token, settings.trusted_proxies)
        system_routes.append(Route("/metrics", page, methods=["GET"]))

    # The API routes are here too: for 404/405 answers and redirects, which ApiRouter leaves to Starlette.
    site = Starlette(
        routes=[
            *system_routes,
            *starlette_routes(endpoints),
            live_route(services),
            *pages.routes(services),
            *admin.routes(services),
        ],
        exception_handlers={
            DomainError: errors.on_domain_error,
            HTTPException: errors.on_http_exception,
            # Its own handler: Starlette re-raises what reaches the Exception handler, for the server to log.
            StorageUnavailable: errors.on_storage_unavailable,
            Exception: errors.on_unexpected,
        },
        lifespan=lifespan,
    )

    async def allowed_origins(project_id: str) -> list[str]:
        return await services.projects.allowed_origins(project_id)

    api = BodyLimit(ApiRouter(endpoints, fallback=site), max_bytes=settings.max_body_bytes)
    app = SecurityHeaders(ProjectCors(api, origin_of(settings.public_url), allowed_origins))
    # Outermost, so that every answer is counted, refusals at the door included.
    return RequestMetrics(app, metrics.observe_request) if metrics is not None else app


def _metrics() -> Metrics:
    from chatgate.metrics import Metrics

    return Metrics()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(Settings.from_env())
