"""PostgreSQL sends the one-statement logins and messages that requests reach in the same turn of the event
loop as one statement (storage/statement_batches.py). On a real database: every login or message of a batch
is recorded as if it had been sent alone, one the database refuses takes no other down, seats stay exact,
and each message gets its own event, numbered in the order posted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatgate.domain.conversations import Conversation, ConversationStatus, Event, EventType, Message, SenderType
from chatgate.domain.identity import Lookup
from chatgate.domain.ids import new_id
from chatgate.domain.login_effects import CreateAtOnce, FoundUser, SignInAtOnce, Unchanged
from chatgate.domain.models import AuditEvent, CreatedVia, NewEndUser, Session, SessionKind
from chatgate.storage.migrate import upgrade
from chatgate.storage.postgres import PostgresStorage
from postgres_tools import with_storage

LOGINS = 12


@pytest.fixture(scope="module")
def database(postgres_database: str) -> str:
    upgrade(postgres_database)
    return postgres_database


async def a_project(storage: PostgresStorage) -> str:
    project_id, now = new_id(), datetime.now(UTC)
    async with storage.write() as tx:
        await tx.sql.run(
            "INSERT INTO projects (id, name, settings, created_at, updated_at) VALUES (:id, 'p', :s, :now, :now)",
            id=project_id,
            s={},
            now=now,
        )
        await tx.sql.run(
            "INSERT INTO seat_counters (project_id, shard, used)"
            " SELECT :id, shard, 0 FROM generate_series(0, 15) AS shard",
            id=project_id,
        )
    return project_id


def audit(project_id: str, user_id: str, action: str) -> AuditEvent:
    return AuditEvent(new_id(), datetime.now(UTC), action, project_id, "end_user", user_id, user_id, None, None, {})


def first_login(project_id: str, external_id: str) -> CreateAtOnce:
    user_id, now = new_id(), datetime.now(UTC)
    session = Session(new_id(), SessionKind.END_USER, project_id, user_id, now, now + timedelta(hours=1))
    profile = NewEndUser(CreatedVia.EXTERNAL_AUTH_CODE, external_id=external_id)
    created, signed_in = audit(project_id, user_id, "user.created"), audit(project_id, user_id, "user.signed_in")
    return CreateAtOnce(project_id, user_id, profile, session, created, signed_in, now)


def returning_login(project_id: str, external_id: str) -> SignInAtOnce:
    now = datetime.now(UTC)
    session = Session(new_id(), SessionKind.END_USER, project_id, "", now, now + timedelta(hours=1))
    return SignInAtOnce(
        project_id,
        Lookup("external_id", external_id),
        Unchanged(verified_email=False, has_external_id=True, profile={}),
        session,
        audit(project_id, "", "user.signed_in"),
        now,
    )


async def create(storage: PostgresStorage, attempt: CreateAtOnce) -> bool:
    async with storage.write() as tx:
        return await tx.end_users.create_and_sign_in(attempt)


async def sign_in(storage: PostgresStorage, attempt: SignInAtOnce) -> FoundUser:
    async with storage.write() as tx:
        return await tx.end_users.find_and_sign_in(attempt)


async def scalar(storage: PostgresStorage, sql: str, **params: Any) -> Any:
    async with storage.read() as tx:
        return await tx.sql.scalar(sql, **params)


async def project_rows(storage: PostgresStorage, project_id: str) -> tuple[int, int, int, int]:
    """The project's users, seats taken, sessions and audit rows."""
    counts = [
        await scalar(storage, f"SELECT {what} FROM {table} WHERE project_id = :p", p=project_id)
        for what, table in (
            ("COUNT(*)", "end_users"),
            ("SUM(used)", "seat_counters"),
            ("COUNT(*)", "sessions"),
            ("COUNT(*)", "audit_events"),
        )
    ]
    return counts[0], counts[1], counts[2], counts[3]


def test_first_logins_sent_together_each_create_their_user_session_seat_and_audit_rows(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[bool], tuple[int, int, int, int]]:
        project_id = await a_project(storage)
        attempts = [first_login(project_id, f"new-{i}") for i in range(LOGINS)]
        # Started together, more of them than the pool's two connections.
        created = await asyncio.gather(*(create(storage, attempt) for attempt in attempts))
        return list(created), await project_rows(storage, project_id)

    created, rows = with_storage(database, scenario)
    assert created == [True] * LOGINS
    assert rows == (LOGINS, LOGINS, LOGINS, 2 * LOGINS)  # users, seats, sessions, audit rows


def test_one_user_first_seen_twice_in_one_batch_is_created_once(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[bool], tuple[int, int, int, int]]:
        project_id = await a_project(storage)
        created = await asyncio.gather(*(create(storage, first_login(project_id, "twice")) for _ in range(2)))
        return list(created), await project_rows(storage, project_id)

    created, rows = with_storage(database, scenario)
    assert sorted(created) == [False, True]  # the other goes the long way, and finds the user
    assert rows == (1, 1, 1, 2)


def test_a_login_the_database_refuses_takes_no_other_login_of_its_batch_down(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[Any], tuple[int, int, int, int]]:
        project_id = await a_project(storage)
        attempts = [first_login(project_id, f"fine-{i}") for i in range(LOGINS)]
        attempts[5] = first_login(project_id, "x" * 300)  # longer than the column holds
        outcomes = await asyncio.gather(*(create(storage, a) for a in attempts), return_exceptions=True)
        return list(outcomes), await project_rows(storage, project_id)

    outcomes, rows = with_storage(database, scenario)
    assert isinstance(outcomes[5], Exception)
    assert outcomes[:5] + outcomes[6:] == [True] * (LOGINS - 1)
    assert rows == (LOGINS - 1, LOGINS - 1, LOGINS - 1, 2 * (LOGINS - 1))


def test_returning_logins_sent_together_each_get_their_own_user_and_session(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[FoundUser], list[str], list[int]]:
        project_id = await a_project(storage)
        for i in range(LOGINS):
            assert await create(storage, first_login(project_id, f"back-{i}"))
        # Every user once, the first one twice more, and one nobody has: in one turn of the loop.
        wanted = [f"back-{i}" for i in range(LOGINS)] + ["back-0", "back-0", "nobody"]
        attempts = [returning_login(project_id, external_id) for external_id in wanted]
        found = await asyncio.gather(*(sign_in(storage, attempt) for attempt in attempts))
        sessions = [
            await scalar(
                storage,
                "SELECT COUNT(*) FROM sessions s JOIN end_users u ON u.id = s.subject_id"
                " WHERE u.project_id = :p AND u.external_id = :x",
                p=project_id,
                x=external_id,
            )
            for external_id in (f"back-{i}" for i in range(LOGINS))
        ]
        return list(found), wanted, sessions

    found, wanted, sessions = with_storage(database, scenario)
    for result, external_id in zip(found[:-1], wanted[:-1], strict=True):
        assert result.signed_in
        assert result.user is not None and result.user.external_id == external_id
    assert found[-1] == FoundUser(None, signed_in=False, seen=False)
    assert sessions == [4] + [2] * (LOGINS - 1)  # first login's session, and one per returning login


async def a_conversation(storage: PostgresStorage, project_id: str, status: str = "open") -> tuple[str, str]:
    """A user of the project and a conversation of theirs: (user id, conversation id)."""
    user = first_login(project_id, f"writer-{new_id()}")
    assert await create(storage, user)
    conversation = Conversation(
        new_id(), project_id, user.user_id, None, ConversationStatus(status), user.now, user.now
    )
    async with storage.write() as tx:
        await tx.conversations.add(conversation)
    return user.user_id, conversation.id


def a_message(project_id: str, conversation_id: str, sender_id: str, text: str, client_id: str | None) -> Message:
    return Message(
        new_id(), conversation_id, project_id, SenderType.USER, sender_id, text, client_id, datetime.now(UTC)
    )


async def post(storage: PostgresStorage, message: Message, owner_id: str | None) -> Event | None:
    event = Event(EventType.MESSAGE_CREATED, message.project_id, {"message": {"id": message.id}})
    async with storage.write() as tx:
        return await tx.messages.post(message, event, open_only=True, owner_id=owner_id)


def test_messages_sent_together_are_each_stored_with_their_own_event_in_order(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[Message], list[Event | None], list[Any], Any]:
        project_id = await a_project(storage)
        user_id, conversation_id = await a_conversation(storage, project_id)
        _, closed_id = await a_conversation(storage, project_id, status="closed")
        messages = [a_message(project_id, conversation_id, user_id, f"m{i}", f"c{i}") for i in range(LOGINS)]
        refused = [
            a_message(project_id, conversation_id, user_id, "again", "c0"),  # a client_id already used
            a_message(project_id, closed_id, user_id, "closed", None),  # not open
            a_message(project_id, conversation_id, "someone-else", "not theirs", None),
        ]
        owners = [user_id] * (LOGINS + 2) + ["someone-else"]
        posted = await asyncio.gather(*(post(storage, m, o) for m, o in zip(messages + refused, owners, strict=True)))
        async with storage.read() as tx:
            stored = await tx.sql.all(
                "SELECT text FROM messages WHERE conversation_id IN (:c, :closed) ORDER BY id",
                c=conversation_id,
                closed=closed_id,
            )
            updated = await tx.sql.scalar("SELECT updated_at FROM conversations WHERE id = :c", c=conversation_id)
        return messages, list(posted), [row["text"] for row in stored], updated

    messages, posted, texts, updated = with_storage(database, scenario)
    events = posted[:LOGINS]
    assert posted[LOGINS:] == [None, None, None]
    assert sorted(texts) == sorted(m.text for m in messages)  # each stored once, the refused ones not at all
    seqs = [event.seq for event in events if event is not None]
    assert len(seqs) == LOGINS and seqs == sorted(set(seqs))  # numbered apart, in the order posted
    assert all(event is not None and event.user_id == messages[0].sender_id for event in events)
    assert updated == max(m.created_at for m in messages)


def test_a_message_the_database_refuses_takes_no_other_message_of_its_batch_down(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[Any], int]:
        project_id = await a_project(storage)
        user_id, conversation_id = await a_conversation(storage, project_id)
        messages = [a_message(project_id, conversation_id, user_id, f"m{i}", None) for i in range(LOGINS)]
        messages[3] = a_message(project_id, conversation_id, user_id, "x" * 10_001, None)  # longer than the column
        outcomes = await asyncio.gather(*(post(storage, m, user_id) for m in messages), return_exceptions=True)
        stored = await scalar(storage, "SELECT COUNT(*) FROM messages WHERE conversation_id = :c", c=conversation_id)
        return list(outcomes), stored

    outcomes, stored = with_storage(database, scenario)
    assert isinstance(outcomes[3], Exception)
    assert all(isinstance(outcome, Event) for outcome in outcomes[:3] + outcomes[4:])
    assert stored == LOGINS - 1
