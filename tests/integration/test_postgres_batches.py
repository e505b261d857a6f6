"""PostgreSQL sends the one-statement logins that requests reach in the same turn of the event loop as one
statement (storage/statement_batches.py). On a real database: every login of a batch is recorded as if it
had been sent alone, a login the database refuses takes no other down, and seats stay exact."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from async_tools import run_async
from chatgate.domain.identity import Lookup
from chatgate.domain.ids import new_id
from chatgate.domain.login_effects import CreateAtOnce, FoundUser, SignInAtOnce, Unchanged
from chatgate.domain.models import AuditEvent, CreatedVia, NewEndUser, Session, SessionKind
from chatgate.storage.migrate import upgrade
from chatgate.storage.postgres import PostgresStorage

T = TypeVar("T")
LOGINS = 12


@pytest.fixture(scope="module")
def database(postgres_database: str) -> str:
    upgrade(postgres_database)
    return postgres_database


def with_storage(url: str, scenario: Callable[[PostgresStorage], Awaitable[T]]) -> T:
    async def run() -> T:
        storage = PostgresStorage(url, pool_size=2)
        await storage.start()
        try:
            return await scenario(storage)
        finally:
            await storage.close()

    return run_async(run())


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


def test_first_logins_sent_together_each_create_their_user_session_seat_and_audit_rows(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[bool], int, int, int, int]:
        project_id = await a_project(storage)
        attempts = [first_login(project_id, f"new-{i}") for i in range(LOGINS)]
        # Started together, more than the pool's two connections: they can only all pass as batches.
        created = await asyncio.gather(*(create(storage, attempt) for attempt in attempts))
        p = {"p": project_id}
        return (
            list(created),
            await scalar(storage, "SELECT COUNT(*) FROM end_users WHERE project_id = :p", **p),
            await scalar(storage, "SELECT SUM(used) FROM seat_counters WHERE project_id = :p", **p),
            await scalar(storage, "SELECT COUNT(*) FROM sessions WHERE project_id = :p", **p),
            await scalar(storage, "SELECT COUNT(*) FROM audit_events WHERE project_id = :p", **p),
        )

    created, users, seats, sessions, audit_rows = with_storage(database, scenario)
    assert created == [True] * LOGINS
    assert (users, seats, sessions, audit_rows) == (LOGINS, LOGINS, LOGINS, 2 * LOGINS)


def test_one_user_first_seen_twice_in_one_batch_is_created_once(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[bool], int, int]:
        project_id = await a_project(storage)
        created = await asyncio.gather(*(create(storage, first_login(project_id, "twice")) for _ in range(2)))
        users = await scalar(storage, "SELECT COUNT(*) FROM end_users WHERE project_id = :p", p=project_id)
        seats = await scalar(storage, "SELECT SUM(used) FROM seat_counters WHERE project_id = :p", p=project_id)
        return list(created), users, seats

    created, users, seats = with_storage(database, scenario)
    assert sorted(created) == [False, True]  # the other goes the long way, and finds the user
    assert (users, seats) == (1, 1)


def test_a_login_the_database_refuses_takes_no_other_login_of_its_batch_down(database: str) -> None:
    async def scenario(storage: PostgresStorage) -> tuple[list[Any], int, int, int]:
        project_id = await a_project(storage)
        attempts = [first_login(project_id, f"fine-{i}") for i in range(LOGINS)]
        attempts[5] = first_login(project_id, "x" * 300)  # longer than the column holds
        outcomes = await asyncio.gather(*(create(storage, a) for a in attempts), return_exceptions=True)
        p = {"p": project_id}
        return (
            list(outcomes),
            await scalar(storage, "SELECT COUNT(*) FROM end_users WHERE project_id = :p", **p),
            await scalar(storage, "SELECT SUM(used) FROM seat_counters WHERE project_id = :p", **p),
            await scalar(storage, "SELECT COUNT(*) FROM sessions WHERE project_id = :p", **p),
        )

    outcomes, users, seats, sessions = with_storage(database, scenario)
    assert isinstance(outcomes[5], Exception)
    assert outcomes[:5] + outcomes[6:] == [True] * (LOGINS - 1)
    assert (users, seats, sessions) == (LOGINS - 1, LOGINS - 1, LOGINS - 1)


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
