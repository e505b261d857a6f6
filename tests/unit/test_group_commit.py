"""Group commit on a real SQLite file: write units queued in one turn share a commit, yet each stands or falls alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from async_tools import run_async
from chatgate.storage.sqlite import SqliteStorage

T = TypeVar("T")


def with_storage(path: Path, scenario: Callable[[SqliteStorage], Awaitable[T]]) -> T:
    async def run() -> T:
        storage = SqliteStorage(str(path))
        try:
            async with storage.write() as tx:
                await tx.sql.run("CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY)")
            return await scenario(storage)
        finally:
            await storage.close()

    return run_async(run())


async def names(storage: SqliteStorage) -> list[str]:
    async with storage.read() as tx:
        return [row["name"] for row in await tx.sql.all("SELECT name FROM notes ORDER BY name")]


async def add(storage: SqliteStorage, name: str, *, then_fail: bool = False) -> str:
    async with storage.write() as tx:
        await tx.sql.run("INSERT INTO notes (name) VALUES (:name)", name=name)
        if then_fail:
            raise ValueError(f"{name} refused after writing")
    return name


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "chatgate.db"


def test_a_failing_unit_loses_only_its_own_writes(database: Path) -> None:
    async def scenario(storage: SqliteStorage) -> tuple[list[object], list[str]]:
        refused = add(storage, "refused", then_fail=True)
        outcomes = await asyncio.gather(add(storage, "first"), refused, add(storage, "third"), return_exceptions=True)
        return list(outcomes), await names(storage)

    (first, refused, third), stored = with_storage(database, scenario)
    assert (first, third) == ("first", "third")
    assert isinstance(refused, ValueError)
    assert stored == ["first", "third"]


def test_units_of_one_batch_see_each_others_writes(database: Path) -> None:
    """Inside one uncommitted batch, a later unit finds what an earlier one wrote: check-then-write stays safe."""

    async def add_unless_present(storage: SqliteStorage, name: str) -> bool:
        async with storage.write() as tx:
            if await tx.sql.scalar("SELECT count(*) FROM notes WHERE name = :name", name=name):
                return False
            await tx.sql.run("INSERT INTO notes (name) VALUES (:name)", name=name)
            return True

    async def scenario(storage: SqliteStorage) -> tuple[list[bool], list[str]]:
        added = await asyncio.gather(*(add_unless_present(storage, "same") for _ in range(5)))
        return list(added), await names(storage)

    assert with_storage(database, scenario) == ([True, False, False, False, False], ["same"])


def test_an_answer_waits_for_the_commit(database: Path) -> None:
    """When a unit's block has ended, its write is stored: another connection sees it."""

    async def scenario(storage: SqliteStorage) -> list[str]:
        await asyncio.gather(add(storage, "a"), add(storage, "b"))
        other = SqliteStorage(str(database))
        try:
            return await names(other)
        finally:
            await other.close()

    assert with_storage(database, scenario) == ["a", "b"]


def test_a_failed_commit_fails_every_unit_and_stores_nothing(database: Path) -> None:
    async def defer_a_broken_constraint(storage: SqliteStorage) -> None:
        # A deferred foreign key is checked at COMMIT: the whole batch's commit fails.
        async with storage.write() as tx:
            await tx.sql.run("PRAGMA defer_foreign_keys = ON")
            await tx.sql.run("CREATE TABLE IF NOT EXISTS owned (owner TEXT REFERENCES notes(name))")
            await tx.sql.run("INSERT INTO owned (owner) VALUES ('nobody')")

    async def scenario(storage: SqliteStorage) -> tuple[list[object], list[str]]:
        outcomes = await asyncio.gather(
            add(storage, "innocent"), defer_a_broken_constraint(storage), return_exceptions=True
        )
        after = await add(storage, "later")  # the storage recovers for the next batch
        return list(outcomes), [after, *await names(storage)]

    outcomes, stored = with_storage(database, scenario)
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    assert stored == ["later", "later"]


def test_a_block_that_suspends_is_refused_rather_than_sharing_its_savepoint(database: Path) -> None:
    async def suspends(storage: SqliteStorage) -> None:
        async with storage.write() as tx:
            await tx.sql.run("INSERT INTO notes (name) VALUES ('slow')")
            await asyncio.sleep(0.01)  # not allowed: a write block awaits only its repositories

    async def scenario(storage: SqliteStorage) -> list[object]:
        return list(await asyncio.gather(suspends(storage), add(storage, "quick"), return_exceptions=True))

    slow, quick = with_storage(database, scenario)
    assert slow is None
    assert isinstance(quick, RuntimeError)


def test_waiting_for_another_process_does_not_stop_the_event_loop(database: Path) -> None:
    """While another server process holds the write lock, this one keeps serving; its write lands after."""

    async def scenario(storage: SqliteStorage) -> tuple[int, str, list[str]]:
        other_process = SqliteStorage(str(database))  # its own lock file handle, like a process
        others_lock = other_process._lock
        assert others_lock is not None
        others_lock.acquire()
        pending = asyncio.ensure_future(add(storage, "after"))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert not pending.done()
        threading.Thread(target=others_lock.release).start()
        name = await asyncio.wait_for(pending, 5)
        await other_process.close()
        return ticks, name, await names(storage)

    assert with_storage(database, scenario) == (20, "after", ["after"])
