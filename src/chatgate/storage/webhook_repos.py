"""Webhooks and their outbox of deliveries: the SQL, for both adapters.

A delivery is claimed with one conditional UPDATE that moves its
``next_attempt_at`` past the lease and stamps it with the claimer's
``lease``: on PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, on
SQLite the write lock orders the claims of every process. A claimed row is
not due again until its lease lapses (its sender died), and only the lease
holder may record the attempt's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from chatgate.domain.ids import new_id
from chatgate.domain.webhooks import Delivery, DeliveryStatus, Outcome, Webhook, WebhookEvent
from chatgate.storage.sql import Sql

# At most this many events go into one enqueue statement (a merge may move many conversations).
EVENTS_PER_STATEMENT = 100
MAX_ERROR_CHARS = 500

# 6 random bytes as 12 hex digits, per row: the random half of an id (domain/ids.py) made in SQL.
_RANDOM_HEX = {
    "sqlite": "lower(hex(randomblob(6)))",
    "postgresql": "left(md5(gen_random_uuid()::text), 12)",
}


@lru_cache(maxsize=32)
def _enqueue_sql(dialect: str, count: int) -> str:
    events = " UNION ALL ".join(f"SELECT :type{i} AS event_type, :data{i} AS payload" for i in range(count))
    return (
        "INSERT INTO webhook_deliveries (id, webhook_id, project_id, event_type, payload, status, attempts,"  # noqa: S608
        f" next_attempt_at, created_at) SELECT :stamp || {_RANDOM_HEX[dialect]}, w.id, w.project_id, e.event_type,"
        f" e.payload, '{DeliveryStatus.PENDING.value}', 0, :now, :now FROM webhooks w JOIN ({events}) e"
        " ON (' ' || w.events || ' ') LIKE ('% ' || e.event_type || ' %') WHERE w.project_id = :project_id"
    )


def deliveries_of_event(dialect: str, source: str) -> str:
    """An INSERT of one event's deliveries, to each webhook of the project that asks for it, once per
    row of ``source`` (a CTE of the statement that stores the event, or a one-row table)."""
    return (
        "INSERT INTO webhook_deliveries (id, webhook_id, project_id, event_type, payload, status, attempts,"  # noqa: S608
        f" next_attempt_at, created_at) SELECT :wh_stamp || {_RANDOM_HEX[dialect]}, w.id, w.project_id, :wh_type,"
        f" :wh_data, '{DeliveryStatus.PENDING.value}', 0, :wh_now, :wh_now FROM webhooks w, {source}"
        " WHERE w.project_id = :wh_project AND (' ' || w.events || ' ') LIKE :wh_pattern"
    )


def deliveries_of_each(source: str) -> str:
    """``deliveries_of_event`` on PostgreSQL for each row of ``source``, a CTE over ``input`` whose
    ``wh_*`` columns hold the parameters ``delivery_values`` gives (statement_batches.py)."""
    return (
        "INSERT INTO webhook_deliveries (id, webhook_id, project_id, event_type, payload, status, attempts,"  # noqa: S608
        f" next_attempt_at, created_at) SELECT {source}.wh_stamp || {_RANDOM_HEX['postgresql']}, w.id, w.project_id,"
        f" {source}.wh_type, {source}.wh_data, '{DeliveryStatus.PENDING.value}', 0, {source}.wh_now, {source}.wh_now"
        f" FROM webhooks w JOIN {source} ON w.project_id = {source}.wh_project"
        f" AND (' ' || w.events || ' ') LIKE {source}.wh_pattern"
    )


async def has_webhooks(sql: Sql, project_id: str) -> bool:
    """On SQLite an INSERT that selects no row still costs ~30 µs under the write lock; this read, ~3."""
    return await sql.scalar("SELECT 1 FROM webhooks WHERE project_id = :p LIMIT 1", p=project_id) is not None


def delivery_values(project_id: str, event_type: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The parameters of ``deliveries_of_event``."""
    return {
        "wh_stamp": new_id()[:12],
        "wh_type": event_type,
        "wh_data": orjson.dumps(data).decode(),
        "wh_now": now,
        "wh_project": project_id,
        "wh_pattern": f"% {event_type} %",
    }


# Live events a webhook can ask for (the same names): stored with their deliveries, in one statement.
WEBHOOK_EVENT_NAMES = frozenset(e.value for e in WebhookEvent)


_DUE = (
    "SELECT id FROM webhook_deliveries WHERE status = :pending AND next_attempt_at <= :now"
    " ORDER BY next_attempt_at, id LIMIT :limit"
)
# The due rows are picked once (PostgreSQL: ARRAY(...), so the pick is not run again per row, and
# rows another transaction is claiming are skipped), then the UPDATE checks they are still due.
_CLAIM = {
    dialect: "UPDATE webhook_deliveries SET lease = :lease, next_attempt_at = :until, attempts = attempts + 1,"  # noqa: S608
    f" last_attempt_at = :now WHERE {picked} AND status = :pending AND next_attempt_at <= :now RETURNING *"
    for dialect, picked in (
        ("sqlite", f"id IN ({_DUE})"),
        ("postgresql", f"id = ANY(ARRAY({_DUE} FOR UPDATE SKIP LOCKED))"),
    )
}


class WebhookRepo:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    async def add(self, w: Webhook) -> None:
        await self.sql.run(
            "INSERT INTO webhooks (id, project_id, url, events, secret_sealed, created_at)"
            " VALUES (:id, :project_id, :url, :events, :sealed, :created_at)",
            id=w.id,
            project_id=w.project_id,
            url=w.url,
            events=" ".join(e.value for e in w.events),
            sealed=w.secret_sealed,
            created_at=w.created_at,
        )

    async def get(self, project_id: str, webhook_id: str) -> Webhook | None:
        row = await self.sql.one(
            "SELECT * FROM webhooks WHERE id = :id AND project_id = :p", id=webhook_id, p=project_id
        )
        return self._webhook(row) if row else None

    async def by_id(self, webhook_id: str) -> Webhook | None:
        row = await self.sql.one("SELECT * FROM webhooks WHERE id = :id", id=webhook_id)
        return self._webhook(row) if row else None

    async def for_project(self, project_id: str) -> list[Webhook]:
        rows = await self.sql.all("SELECT * FROM webhooks WHERE project_id = :p ORDER BY id", p=project_id)
        return [self._webhook(r) for r in rows]

    async def count(self, project_id: str) -> int:
        return int(await self.sql.scalar("SELECT COUNT(*) FROM webhooks WHERE project_id = :p", p=project_id))

    async def remove(self, project_id: str, webhook_id: str) -> bool:
        # Its deliveries go with it (ON DELETE CASCADE; SQLite connections turn foreign keys on).
        changed = await self.sql.run(
            "DELETE FROM webhooks WHERE id = :id AND project_id = :p", id=webhook_id, p=project_id
        )
        return changed == 1

    def _webhook(self, r: dict[str, Any]) -> Webhook:
        return Webhook(
            r["id"],
            r["project_id"],
            r["url"],
            tuple(WebhookEvent(name) for name in str(r["events"]).split()),
            bytes(r["secret_sealed"]),
            self.sql.when(r["created_at"]),  # type: ignore[arg-type]
        )


class WebhookDeliveryRepo:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    async def enqueue(
        self, project_id: str, events: Sequence[tuple[WebhookEvent, Mapping[str, Any]]], now: datetime
    ) -> None:
        if self.sql.dialect == "sqlite" and not await has_webhooks(self.sql, project_id):
            return
        for start in range(0, len(events), EVENTS_PER_STATEMENT):
            chunk = events[start : start + EVENTS_PER_STATEMENT]
            params: dict[str, Any] = {"stamp": new_id()[:12], "now": now, "project_id": project_id}
            for i, (event, data) in enumerate(chunk):
                params[f"type{i}"] = event.value
                params[f"data{i}"] = orjson.dumps(data).decode()
            # Nobody reads its outcome: on PostgreSQL it travels with the transaction's last statement.
            await self.sql.write_later(_enqueue_sql(self.sql.dialect, len(chunk)), **params)

    async def get(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        row = await self.sql.one(
            "SELECT * FROM webhook_deliveries WHERE id = :id AND webhook_id = :w", id=delivery_id, w=webhook_id
        )
        return self._delivery(row) if row else None

    async def page(
        self, webhook_id: str, *, status: DeliveryStatus | None, limit: int, before: str | None
    ) -> list[Delivery]:
        where = ["webhook_id = :w"]
        params: dict[str, Any] = {"w": webhook_id, "limit": limit}
        if status is not None:
            where.append("status = :status")
            params["status"] = status.value
        if before is not None:
            where.append("id < :before")
            params["before"] = before
        rows = await self.sql.all(
            f"SELECT * FROM webhook_deliveries WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit",  # noqa: S608
            **params,
        )
        return [self._delivery(r) for r in rows]

    async def any_due(self, now: datetime) -> bool:
        found = await self.sql.scalar(
            "SELECT 1 FROM webhook_deliveries WHERE status = :pending AND next_attempt_at <= :now LIMIT 1",
            pending=DeliveryStatus.PENDING.value,
            now=now,
        )
        return found is not None

    async def claim(self, now: datetime, lease: str, lease_until: datetime, limit: int) -> list[Delivery]:
        rows = await self.sql.all(
            _CLAIM[self.sql.dialect],
            lease=lease,
            until=lease_until,
            now=now,
            pending=DeliveryStatus.PENDING.value,
            limit=limit,
        )
        return sorted((self._delivery(r) for r in rows), key=lambda d: d.id)

    async def record(
        self,
        delivery_id: str,
        lease: str,
        outcome: Outcome,
        status: DeliveryStatus,
        next_attempt_at: datetime,
        now: datetime,
    ) -> bool:
        changed = await self.sql.run(
            "UPDATE webhook_deliveries SET status = :status, next_attempt_at = :next, lease = NULL,"
            " last_status_code = :code, last_error = :error, delivered_at = :delivered_at"
            " WHERE id = :id AND lease = :lease",
            status=status.value,
            next=next_attempt_at,
            code=outcome.status_code,
            error=outcome.error[:MAX_ERROR_CHARS] if outcome.error else None,
            delivered_at=now if status is DeliveryStatus.DELIVERED else None,
            id=delivery_id,
            lease=lease,
        )
        return changed == 1

    async def resend(self, webhook_id: str, delivery_id: str, now: datetime) -> bool:
        # A send in flight loses its lease: its outcome is not recorded, this new attempt's is.
        changed = await self.sql.run(
            "UPDATE webhook_deliveries SET status = :pending, next_attempt_at = :now, lease = NULL"
            " WHERE id = :id AND webhook_id = :w",
            pending=DeliveryStatus.PENDING.value,
            now=now,
            id=delivery_id,
            w=webhook_id,
        )
        return changed == 1

    async def forget_finished_before(self, moment: datetime) -> int:
        # A finished delivery's next_attempt_at is when it finished.
        return await self.sql.run(
            "DELETE FROM webhook_deliveries WHERE status IN (:delivered, :failed) AND next_attempt_at < :moment",
            delivered=DeliveryStatus.DELIVERED.value,
            failed=DeliveryStatus.FAILED.value,
            moment=moment,
        )

    def _delivery(self, r: dict[str, Any]) -> Delivery:
        when = self.sql.when
        return Delivery(
            id=r["id"],
            webhook_id=r["webhook_id"],
            project_id=r["project_id"],
            event=WebhookEvent(r["event_type"]),
            data_json=r["payload"],
            status=DeliveryStatus(r["status"]),
            attempts=int(r["attempts"]),
            created_at=when(r["created_at"]),  # type: ignore[arg-type]
            next_attempt_at=when(r["next_attempt_at"]),  # type: ignore[arg-type]
            last_attempt_at=when(r["last_attempt_at"]),
            last_status_code=r["last_status_code"],
            last_error=r["last_error"],
            delivered_at=when(r["delivered_at"]),
            lease=r["lease"],
        )
