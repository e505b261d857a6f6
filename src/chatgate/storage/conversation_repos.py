"""Conversations, messages and the event log: the SQL, for both adapters."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from chatgate.domain.conversations import (
    HINT_SEQ,
    Conversation,
    ConversationStatus,
    Event,
    EventType,
    Message,
    SenderType,
    Viewer,
)
from chatgate.storage.sql import Sql
from chatgate.storage.statement_batches import Columns, input_columns
from chatgate.storage.webhook_repos import (
    WEBHOOK_EVENT_NAMES,
    deliveries_of_each,
    deliveries_of_event,
    delivery_values,
    has_webhooks,
)

# A NOTIFY payload must stay under 8,000 bytes; a larger event is announced by its seq alone
# and read back from the table by the listener.
NOTIFY_CHANNEL = "chatgate_events"
MAX_NOTIFY_BYTES = 7_000


class ConversationRepo:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    async def add(self, c: Conversation) -> None:
        await self.sql.run(
            "INSERT INTO conversations (id, project_id, user_id, title, status, created_at, updated_at)"
            " VALUES (:id, :project_id, :user_id, :title, :status, :created_at, :updated_at)",
            id=c.id,
            project_id=c.project_id,
            user_id=c.user_id,
            title=c.title,
            status=c.status.value,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )

    async def get(self, project_id: str, conversation_id: str) -> Conversation | None:
        row = await self.sql.one(
            "SELECT * FROM conversations WHERE id = :id AND project_id = :p", id=conversation_id, p=project_id
        )
        return self._conversation(row) if row else None

    async def page(
        self,
        project_id: str,
        *,
        user_id: str | None,
        status: ConversationStatus | None,
        updated_since: datetime | None,
        limit: int,
        before: str | None,
    ) -> list[Conversation]:
        where = ["project_id = :p"]
        params: dict[str, Any] = {"p": project_id, "limit": limit}
        if user_id is not None:
            where.append("user_id = :u")
            params["u"] = user_id
        if status is not None:
            where.append("status = :status")
            params["status"] = status.value
        if updated_since is not None:
            where.append("updated_at >= :since")
            params["since"] = updated_since
        if before is not None:
            where.append("id < :before")
            params["before"] = before
        rows = await self.sql.all(
            f"SELECT * FROM conversations WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit",  # noqa: S608
            **params,
        )
        return [self._conversation(r) for r in rows]

    async def count_for_user(self, user_id: str) -> int:
        if self.sql.dialect == "postgresql":
            # The user's row lock queues their concurrent starts, so each counts the ones before it
            # (SQLite's single writer already does).
            await self.sql.run("SELECT id FROM end_users WHERE id = :u FOR UPDATE", u=user_id)
        return int(await self.sql.scalar("SELECT COUNT(*) FROM conversations WHERE user_id = :u", u=user_id))

    async def set_status(self, conversation_id: str, status: ConversationStatus, now: datetime) -> None:
        await self.sql.run(
            "UPDATE conversations SET status = :status, updated_at = :now WHERE id = :id",
            status=status.value,
            now=now,
            id=conversation_id,
        )

    async def move_all(self, from_user_id: str, to_user_id: str, now: datetime) -> list[Conversation]:
        rows = await self.sql.all(
            "UPDATE conversations SET user_id = :to, updated_at = :now WHERE user_id = :from RETURNING *",
            to=to_user_id,
            now=now,
            **{"from": from_user_id},
        )
        return sorted((self._conversation(r) for r in rows), key=lambda c: c.id)

    def _conversation(self, r: dict[str, Any]) -> Conversation:
        when = self.sql.when
        return Conversation(
            r["id"],
            r["project_id"],
            r["user_id"],
            r["title"],
            ConversationStatus(r["status"]),
            when(r["created_at"]),  # type: ignore[arg-type]
            when(r["updated_at"]),  # type: ignore[arg-type]
        )


class MessageRepo:
    def __init__(self, sql: Sql, events: EventRepo) -> None:
        self.sql = sql
        self.events = events

    async def post(
        self, m: Message, event: Event, *, open_only: bool = False, owner_id: str | None = None
    ) -> Event | None:
        """Store the message, touch its conversation and store ``event`` for the conversation's user, if
        the conversation is in the message's project (and open, with ``open_only``; and ``owner_id``'s,
        when given). None, and nothing written, when it is not, or when the sender already sent a
        message with this ``client_id`` there."""
        values = _message_values(m) | {"open_only": open_only, "owner_id": owner_id}
        if self.sql.dialect != "postgresql":
            postable = await self.sql.one(_POSTABLE, **values)
            if postable is None or await self.sql.one(_INSERT_MESSAGE, **values) is None:
                return None
            await self.sql.run(_TOUCH, **values)
            return await self.events.add(replace(event, user_id=postable["user_id"]))
        # PostgreSQL: one statement, one round trip (the check, the message, the conversation's
        # updatedAt, the event and its webhook deliveries); atomic without BEGIN/COMMIT when it is
        # the only write, and then sent with the other messages of the loop's turn.
        event_values = {name: value for name, value in self.events.values(event).items() if name != "user_id"}
        deliveries = delivery_values(m.project_id, event.type.value, event.payload, m.created_at)
        sql, columns = _post_each_sql(tuple(event_values), tuple(deliveries))
        stored = await self.sql.last_write_each(
            sql, columns, values | {f"e_{name}": value for name, value in event_values.items()} | deliveries
        )
        if stored is None:
            return None
        return self.events.added_as(replace(event, user_id=stored["user_id"]), int(stored["seq"]))

    async def by_client_id(self, conversation_id: str, sender_id: str, client_id: str) -> Message | None:
        row = await self.sql.one(
            "SELECT * FROM messages WHERE conversation_id = :c AND sender_id = :s AND client_id = :client_id",
            c=conversation_id,
            s=sender_id,
            client_id=client_id,
        )
        return self._message(row) if row else None

    async def page(self, conversation_id: str, *, after: str | None, before: str | None, limit: int) -> list[Message]:
        where = ["conversation_id = :c"]
        params: dict[str, Any] = {"c": conversation_id, "limit": limit}
        if after is not None:
            where.append("id > :after")
            params["after"] = after
        if before is not None:
            where.append("id < :before")
            params["before"] = before
        clause = " AND ".join(where)
        if before is not None and after is None:
            # The page just before ``before``: read backwards, answer oldest first.
            rows = await self.sql.all(
                f"SELECT * FROM messages WHERE {clause} ORDER BY id DESC LIMIT :limit",  # noqa: S608
                **params,
            )
            rows.reverse()
        else:
            rows = await self.sql.all(
                f"SELECT * FROM messages WHERE {clause} ORDER BY id LIMIT :limit",  # noqa: S608
                **params,
            )
        return [self._message(r) for r in rows]

    def _message(self, r: dict[str, Any]) -> Message:
        return Message(
            r["id"],
            r["conversation_id"],
            r["project_id"],
            SenderType(r["sender_type"]),
            r["sender_id"],
            r["text"],
            r["client_id"],
            self.sql.when(r["created_at"]),  # type: ignore[arg-type]
        )


class EventRepo:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.added: list[Event] = []  # handed to this process's sockets once the transaction commits

    async def add(self, event: Event) -> Event:
        """Store the event and, for an event webhooks can ask for, its deliveries (the outbox)."""
        values = self.values(event)
        hooked = event.type.value in WEBHOOK_EVENT_NAMES and event.project_id is not None
        if hooked:
            values |= delivery_values(event.project_id or "", event.type.value, event.payload, values["created_at"])
        if self.sql.dialect != "postgresql":
            seq = int(await self.sql.scalar(_INSERT_EVENT, **values))
            if hooked and await has_webhooks(self.sql, values["wh_project"]):
                await self.sql.run(deliveries_of_event("sqlite", "(SELECT 1) AS one"), **values)
            return self.added_as(event, seq)
        # One round trip: store and enqueue (the listeners are notified after the commit: postgres.py).
        deliveries = f", d AS ({deliveries_of_event('postgresql', 'e')})" if hooked else ""
        seq = await self.sql.scalar(
            f"WITH e AS ({_INSERT_EVENT}){deliveries} SELECT e.seq FROM e",  # noqa: S608
            **values,
        )
        return self.added_as(event, int(seq))

    async def hint(self, event: Event) -> None:
        self.added.append(event.numbered(HINT_SEQ))

    @staticmethod
    def values(event: Event) -> dict[str, Any]:
        return {
            "project_id": event.project_id,
            "type": event.type.value,
            "user_id": event.user_id,
            "session_id": event.session_id,
            "payload": event.payload,
            "created_at": datetime.now(UTC),
        }

    def added_as(self, event: Event, seq: int) -> Event:
        """The event as stored, numbered; kept for this process's sockets once the transaction commits."""
        numbered = event.numbered(seq)
        self.added.append(numbered)
        return numbered

    async def since(self, viewer: Viewer, after_seq: int, limit: int) -> list[Event]:
        if viewer.end_user_id is None:  # staff: everything of the project but other sessions' ends
            audience = "session_id = :s OR (session_id IS NULL AND type <> :revoked)"
            params = {"s": viewer.session_id, "revoked": EventType.SESSION_REVOKED.value}
        else:
            audience = "user_id = :u AND (session_id IS NULL OR session_id = :s)"
            params = {"u": viewer.end_user_id, "s": viewer.session_id}
        rows = await self.sql.all(
            "SELECT * FROM events WHERE project_id = :p AND seq > :after AND type NOT IN (:changed, :removed)"  # noqa: S608
            f" AND ({audience}) ORDER BY seq LIMIT :limit",
            p=viewer.project_id,
            after=after_seq,
            changed=EventType.PROJECT_CHANGED.value,
            removed=EventType.MEMBER_REMOVED.value,
            limit=limit,
            **params,
        )
        return [self._event(r) for r in rows]

    async def after(self, after_seq: int, limit: int) -> list[Event]:
        rows = await self.sql.all(
            "SELECT * FROM events WHERE seq > :after ORDER BY seq LIMIT :limit", after=after_seq, limit=limit
        )
        return [self._event(r) for r in rows]

    async def last_seq(self) -> int:
        return int(await self.sql.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0)

    async def oldest_seq(self) -> int | None:
        value = await self.sql.scalar("SELECT MIN(seq) FROM events")
        return int(value) if value is not None else None

    async def forget_before(self, moment: datetime) -> int:
        return await self.sql.run("DELETE FROM events WHERE created_at < :moment", moment=moment)

    def _event(self, r: dict[str, Any]) -> Event:
        return Event(
            EventType(r["type"]),
            r["project_id"],
            dict(self.sql.document(r["payload"])),
            r["user_id"],
            r["session_id"],
            int(r["seq"]),
        )


@lru_cache(maxsize=8)
def _post_each_sql(event: tuple[str, ...], deliveries: tuple[str, ...]) -> tuple[str, Columns]:
    """``MessageRepo.post`` on PostgreSQL over ``input`` (statement_batches.py), and its input columns.

    ``c`` is the posts whose conversation may take them, ``posted`` those whose message was inserted (not
    a client_id already used). Each posted message gets its event, numbered in the order of the posts;
    a conversation takes the newest ``created_at`` of its posts, unless another transaction is writing
    its row (SKIP LOCKED): a busy conversation's updatedAt then lags its newest message by that
    transaction's milliseconds, rather than every message queuing behind its commit."""
    message_columns = _MESSAGE_COLUMNS.split(", ")
    sql = (
        "c AS (SELECT input.n, conversations.user_id FROM input JOIN conversations"  # noqa: S608
        " ON conversations.id = input.conversation_id AND conversations.project_id = input.project_id"
        f" AND (conversations.status = '{ConversationStatus.OPEN.value}' OR NOT input.open_only)"
        " AND (conversations.user_id = input.owner_id OR input.owner_id IS NULL)),"
        f" m AS (INSERT INTO messages ({_MESSAGE_COLUMNS})"
        f" SELECT {', '.join(f'input.{column}' for column in message_columns)} FROM input JOIN c USING (n)"
        " ORDER BY input.n ON CONFLICT DO NOTHING RETURNING id),"
        " posted AS (SELECT input.*, c.user_id AS owner FROM input JOIN c USING (n) JOIN m ON m.id = input.id),"
        " numbered AS (SELECT ordered.n, nextval(pg_get_serial_sequence('events', 'seq')) AS seq"
        "   FROM (SELECT n FROM posted ORDER BY n) AS ordered),"
        " e AS (INSERT INTO events (seq, project_id, type, user_id, session_id, payload, created_at)"
        "   SELECT numbered.seq, posted.e_project_id, posted.e_type, posted.owner, posted.e_session_id,"
        "   posted.e_payload, posted.e_created_at FROM posted JOIN numbered USING (n)),"
        " latest AS (SELECT conversation_id, max(created_at) AS created_at FROM posted GROUP BY conversation_id),"
        " free AS (SELECT conversations.id, latest.created_at FROM conversations"
        "   JOIN latest ON conversations.id = latest.conversation_id WHERE conversations.updated_at < latest.created_at"
        "   ORDER BY conversations.id FOR UPDATE OF conversations SKIP LOCKED),"
        " t AS (UPDATE conversations SET updated_at = free.created_at FROM free WHERE conversations.id = free.id),"
        f" d AS ({deliveries_of_each('posted')})"
        " SELECT posted.n, numbered.seq, posted.owner AS user_id FROM posted JOIN numbered USING (n)"
    )
    columns = (
        *input_columns("messages", "", message_columns),
        ("open_only", "boolean"),
        ("owner_id", "text"),
        *input_columns("events", "e_", event),
        *((name, "timestamptz" if name == "wh_now" else "text") for name in deliveries),
    )
    return sql, columns


_INSERT_EVENT = (
    "INSERT INTO events (project_id, type, user_id, session_id, payload, created_at)"
    " VALUES (:project_id, :type, :user_id, :session_id, :payload, :created_at) RETURNING seq"
)
# A message moves its conversation's updatedAt (on PostgreSQL, see _post_each_sql).
_TOUCH = "UPDATE conversations SET updated_at = :created_at WHERE id = :conversation_id AND updated_at < :created_at"
_MESSAGE_COLUMNS = "id, conversation_id, project_id, sender_type, sender_id, text, client_id, created_at"
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({_MESSAGE_COLUMNS})"  # noqa: S608
    " VALUES (:id, :conversation_id, :project_id, :sender_type, :sender_id, :text, :client_id, :created_at)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
# The conversation a message may go to, and whose user its event concerns.
_POSTABLE = (
    "SELECT user_id FROM conversations WHERE id = :conversation_id AND project_id = :project_id"  # noqa: S608
    f" AND (status = '{ConversationStatus.OPEN.value}' OR NOT CAST(:open_only AS BOOLEAN))"
    " AND (user_id = :owner_id OR CAST(:owner_id AS VARCHAR) IS NULL)"
)


def _message_values(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "project_id": m.project_id,
        "sender_type": m.sender_type.value,
        "sender_id": m.sender_id,
        "text": m.text,
        "client_id": m.client_id,
        "created_at": m.created_at,
    }


def notice_of(event: Event) -> str:
    """A NOTIFY payload: the seq, then the event unless too large to travel (then it is read back)."""
    note = orjson.dumps(_wire(event))
    return f"{event.seq} {note.decode() if len(note) <= MAX_NOTIFY_BYTES else ''}"


def _wire(event: Event) -> dict[str, Any]:
    """An event as a NOTIFY carries it (without its seq, which the database adds)."""
    return {
        "type": event.type.value,
        "project_id": event.project_id,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "payload": event.payload,
    }


def event_from_notice(text: str) -> tuple[int, Event | None]:
    """A NOTIFY payload: the seq, and the event unless it was too large to travel (then read it by seq)."""
    seq_text, _, body = text.partition(" ")
    seq = int(seq_text)
    if not body:
        return seq, None
    data = orjson.loads(body)
    return seq, Event(
        EventType(data["type"]), data["project_id"], data["payload"], data["user_id"], data["session_id"], seq
    )
