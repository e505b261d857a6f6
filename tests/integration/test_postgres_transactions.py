"""The PostgreSQL adapter's lazy write transaction, on a real database: late INSERTs are sent together,
stay atomic with everything else in the block, are seen by later statements, and vanish on refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatgate.domain.ids import new_id
from chatgate.domain.models import AuditEvent, Session, SessionKind
from chatgate.storage.migrate import upgrade
from chatgate.storage.postgres import PostgresStorage
from postgres_tools import with_storage


@pytest.fixture(scope="module")
def database(postgres_database: str) -> str:
    upgrade(postgres_database)
    return postgres_database


def a_session(subject: str) -> Session:
    now = datetime.now(UTC)
    return Session(new_id(), SessionKind.STAFF, None, subject, now, now + timedelta(hours=1))


def an_event(subject: str) -> AuditEvent:
    return AuditEvent(new_id(), datetime.now(UTC), "test:event", None, None, None, subject, None, None, {"a": 1})


async def count(storage: PostgresStorage, table: str, subject: str) -> int:
    async with storage.read() as tx:
        return int(await tx.sql.scalar(f"SELECT COUNT(*) FROM {table} WHERE subject_id = :s", s=subject))


def test_late_inserts_are_stored_together_at_commit(database: str) -> None:
    subject = new_id()

    async def scenario(storage: PostgresStorage) -> tuple[int, int]:
        async with storage.write() as tx:
            await tx.sessions.add(a_session(subject))
            await tx.audit.add(an_event(subject))
        return await count(storage, "sessions", subject), await count(storage, "audit_events", subject)

    assert with_storage(database, scenario) == (1, 1)


def test_a_refused_block_leaves_none_of_its_late_inserts(database: str) -> None:
    subject = new_id()

    async def scenario(storage: PostgresStorage) -> tuple[int, int]:
        with pytest.raises(RuntimeError):
            async with storage.write() as tx:
                await tx.sessions.add(a_session(subject))
                await tx.sessions.revoke_subject(subject, datetime.now(UTC))  # a real write: BEGIN, inserts sent
                await tx.audit.add(an_event(subject))
                raise RuntimeError("refused")
        return await count(storage, "sessions", subject), await count(storage, "audit_events", subject)

    assert with_storage(database, scenario) == (0, 0)


def test_later_statements_see_the_late_inserts(database: str) -> None:
    session = a_session(new_id())

    async def scenario(storage: PostgresStorage) -> Any:
        async with storage.write() as tx:
            await tx.sessions.add(session)
            found = await tx.sessions.get(session.id)
        return found

    found = with_storage(database, scenario)
    assert found is not None and found.id == session.id


def test_reads_before_the_first_write_open_no_transaction(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[bool, bool]:
        async with storage.write() as tx:
            await tx.projects.get("000000000000000000000000")
            before = tx.sql.connection.is_in_transaction()
            await tx.sessions.revoke_subject(new_id(), datetime.now(UTC))
            after = tx.sql.connection.is_in_transaction()
        return before, after

    assert with_storage(database, scenario) == (False, True)
