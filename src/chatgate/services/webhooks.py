"""Webhooks (issue 10 §4): a project's HTTPS endpoints receive signed deliveries of its events.

Staff with the owner or admin role register, list and delete them and look
after their deliveries. A service that stores an event calls ``enqueue`` in
the same transaction, so a delivery is stored exactly when its change is
(a crash loses none). The ``WebhookDispatcher`` of every server process
claims due deliveries (no two processes get the same attempt), sends them
outside any transaction and records each outcome; a failure is retried
with exponential backoff for 24 hours, then the delivery is ``failed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from chatgate.domain.audit import AuditAction
from chatgate.domain.conversations import iso
from chatgate.domain.ids import looks_like_id, new_id
from chatgate.domain.webhooks import (
    MAX_WEBHOOKS_PER_PROJECT,
    SECRET_PREFIX,
    Delivery,
    DeliveryStatus,
    Outcome,
    Webhook,
    WebhookEvent,
    after_failure,
    parse_events,
    url_problem,
)
from chatgate.errors import DeliveryNotFound, StorageUnavailable, ValidationFailed, WebhookLimitReached, WebhookNotFound
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.ports import Transaction, WebhookSender
from chatgate.services.projects import require_role

log = logging.getLogger("chatgate")

MAX_PAGE = 200
# The dispatcher looks for due deliveries this often (and at once when one of its sends ends).
POLL_SECONDS = 1.0
# Sends in flight per process.
MAX_IN_FLIGHT = 16
# One attempt, name resolution included, never takes longer than this...
ATTEMPT_TIMEOUT_SECONDS = 20
# ...and a claim lapses after this: a process that died mid-send leaves the delivery to the others.
LEASE_SECONDS = 60
# Delivered and failed deliveries are kept this long for the deliveries list, then pruned.
KEEP_FINISHED = timedelta(days=30)
# A failing dispatcher says so at most this often.
LOG_EVERY_SECONDS = 60.0


async def enqueue(
    tx: Transaction, project_id: str, events: Sequence[tuple[WebhookEvent, Mapping[str, Any]]], now: datetime
) -> None:
    """Store, in the caller's transaction, a delivery of each event to every webhook of the project
    that asks for it. One statement however many events (on PostgreSQL it travels with the commit);
    with no webhook it inserts nothing. (Conversation and message events are enqueued by
    ``tx.events.add`` itself, in the statement that stores them.)"""
    if events:
        await tx.webhook_deliveries.enqueue(project_id, events, now)


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_cursor: str | None


def new_webhook_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``Chatgate-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def delivery_body(delivery: Delivery) -> bytes:
    """The JSON sent: the delivery's envelope around the event's stored ``data``, byte for byte."""
    envelope = orjson.dumps(
        {
            "id": delivery.id,
            "type": delivery.event.value,
            "createdAt": iso(delivery.created_at),
            "projectId": delivery.project_id,
        }
    )
    return envelope[:-1] + b',"data":' + delivery.data_json.encode() + b"}"


class WebhookService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def create(self, project_id: str, url: str, event_names: list[str], caller: Caller) -> CreatedWebhook:
        events, events_problem = parse_events(event_names)
        problems: dict[str, str] = {}
        problem = url_problem(url, self.ctx.settings.webhook_allow_private)
        if problem:
            problems["url"] = problem
        if events_problem:
            problems["events"] = events_problem
        now = self.ctx.clock()
        webhook_id = new_id()
        secret = new_webhook_secret()
        webhook = Webhook(webhook_id, project_id, url, events, self.ctx.secret_box.seal(webhook_id, secret), now)
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            if problems:
                raise ValidationFailed(problems)
            if await tx.webhooks.count(project_id) >= MAX_WEBHOOKS_PER_PROJECT:
                raise WebhookLimitReached()
            await tx.webhooks.add(webhook)
            await audit(
                tx,
                now,
                AuditAction.WEBHOOK_CREATED,
                caller=caller,
                project_id=project_id,
                subject_id=webhook_id,
                url=url,
                events=[e.value for e in events],
            )
        return CreatedWebhook(webhook, secret)

    async def list_webhooks(self, project_id: str, caller: Caller) -> list[Webhook]:
        async with self.ctx.storage.read() as tx:
            await require_role(tx, project_id, caller)
            return await tx.webhooks.for_project(project_id)

    async def delete(self, project_id: str, webhook_id: str, caller: Caller) -> None:
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            if not looks_like_id(webhook_id) or not await tx.webhooks.remove(project_id, webhook_id):
                raise WebhookNotFound()
            await audit(
                tx, now, AuditAction.WEBHOOK_DELETED, caller=caller, project_id=project_id, subject_id=webhook_id
            )

    async def deliveries(
        self,
        project_id: str,
        webhook_id: str,
        caller: Caller,
        *,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryPage:
        """Newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        before = cursor if cursor and looks_like_id(cursor) else None
        async with self.ctx.storage.read() as tx:
            await self._webhook(tx, project_id, webhook_id, caller)
            found = await tx.webhook_deliveries.page(webhook_id, status=status, limit=limit + 1, before=before)
        more = len(found) > limit
        found = found[:limit]
        return DeliveryPage(found, found[-1].id if more and found else None)

    async def resend(self, project_id: str, webhook_id: str, delivery_id: str, caller: Caller) -> Delivery:
        """Pending again and due now: the dispatcher makes a new attempt within a second or so."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await self._webhook(tx, project_id, webhook_id, caller)
            if not looks_like_id(delivery_id) or not await tx.webhook_deliveries.resend(webhook_id, delivery_id, now):
                raise DeliveryNotFound()
            await audit(
                tx,
                now,
                AuditAction.WEBHOOK_DELIVERY_RESENT,
                caller=caller,
                project_id=project_id,
                subject_id=webhook_id,
                delivery=delivery_id,
            )
            delivery = await tx.webhook_deliveries.get(webhook_id, delivery_id)
        assert delivery is not None
        return delivery

    @staticmethod
    async def _webhook(tx: Transaction, project_id: str, webhook_id: str, caller: Caller) -> Webhook:
        await require_role(tx, project_id, caller)
        webhook = await tx.webhooks.get(project_id, webhook_id) if looks_like_id(webhook_id) else None
        if webhook is None:
            raise WebhookNotFound()
        return webhook


class WebhookDispatcher:
    """Sends the due deliveries of every project; one per server process, started with the app."""

    def __init__(self, ctx: ServiceContext, sender: WebhookSender) -> None:
        self.ctx = ctx
        self.sender = sender
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._logged_at = -LOG_EVERY_SECONDS

    async def run(self) -> None:
        """Forever: claim what is due, send it, note the outcome. Never raises (but is cancellable)."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.dispatch_due()
                except Exception as exc:  # the database is away, or a bug: say so (not too often), go on
                    await self._complain("webhook dispatcher: looking for due deliveries failed", exc)
                try:
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in self._in_flight:
                task.cancel()

    async def dispatch_due(self) -> int:
        """Claim the due deliveries this process has room for and start sending them; how many."""
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            return 0
        now = self.ctx.clock()
        async with self.ctx.storage.read() as tx:
            if not await tx.webhook_deliveries.any_due(now):
                return 0
        lease = new_id()
        webhooks: dict[str, Webhook | None] = {}
        async with self.ctx.storage.write() as tx:
            claimed = await tx.webhook_deliveries.claim(now, lease, now + timedelta(seconds=LEASE_SECONDS), room)
            for delivery in claimed:
                if delivery.webhook_id not in webhooks:
                    webhooks[delivery.webhook_id] = await tx.webhooks.by_id(delivery.webhook_id)
        for delivery in claimed:
            webhook = webhooks[delivery.webhook_id]
            if webhook is None:
                continue  # deleted meanwhile, and its deliveries with it
            task = asyncio.create_task(self._attempt(delivery, webhook, lease))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # room for another, and maybe more are due

    async def _attempt(self, delivery: Delivery, webhook: Webhook, lease: str) -> None:
        try:
            outcome = await self._send(delivery, webhook)
        except Exception as exc:  # a bug: the attempt still counts, and is retried like any failure
            await self._complain(f"webhook dispatcher: delivery {delivery.id} could not be sent", exc)
            outcome = Outcome(None, f"internal error: {type(exc).__name__}")
        now = self.ctx.clock()
        if outcome.delivered:
            status, next_at = DeliveryStatus.DELIVERED, now
        else:
            status, next_at = after_failure(delivery, now, self.ctx.settings.webhook_retry_base_seconds)
        try:
            async with self.ctx.storage.write() as tx:
                await tx.webhook_deliveries.record(delivery.id, lease, outcome, status, next_at, now)
        except Exception as exc:  # not recorded: the lease lapses and the delivery is tried again
            await self._complain(f"webhook dispatcher: could not record the outcome of delivery {delivery.id}", exc)

    async def _send(self, delivery: Delivery, webhook: Webhook) -> Outcome:
        body = delivery_body(delivery)
        secret = self.ctx.secret_box.open(webhook.id, webhook.secret_sealed)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Chatgate-Webhooks/1",
            "Chatgate-Delivery": delivery.id,
            "Chatgate-Event": delivery.event.value,
            "Chatgate-Signature": signature(secret, int(self.ctx.clock().timestamp()), body),
        }
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS):
                return await self.sender.send(webhook.url, body, headers)
        except TimeoutError:
            return Outcome(None, f"no answer within {ATTEMPT_TIMEOUT_SECONDS} s")

    async def _complain(self, what: str, exc: Exception) -> None:
        """Log a failure, at most once a minute: one line while the database is away, else the traceback."""
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_SECONDS:
            return
        self._logged_at = now
        reason = exc.reason if isinstance(exc, StorageUnavailable) else await self._database_away()
        if reason is not None:
            log.warning("%s: database unavailable: %s", what, reason)
        else:
            log.error("%s", what, exc_info=exc)

    async def _database_away(self) -> str | None:
        try:
            async with asyncio.timeout(2):
                await self.ctx.storage.ping()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None
