"""Group commit on a real SQLite file: calls queued in one turn share a commit, yet each stands or falls alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from async_tools import run_async
from chatgate.storage.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'chatgate.db'}")
    with database.write() as store:
        store.sql.run("CREATE TABLE notes (name TEXT PRIMARY KEY)")
    yield database
    database.dispose()


def names(db: Database) -> list[str]:
    with db.read() as store:
        return [row["name"] for row in store.sql.all("SELECT name FROM notes ORDER BY name")]


def add(db: Database, name: str, *, then_fail: bool = False) -> str:
    with db.write() as store:
        store.sql.run("INSERT INTO notes (name) VALUES (:name)", name=name)
        if then_fail:
            raise ValueError(f"{name} refused after writing")
    return name


def test_a_failing_call_loses_only_its_own_writes(db: Database) -> None:
    batch = db.group_commit
    assert batch is not None

    async def turn() -> list[object]:
        return list(
            await asyncio.gather(
                batch.run(add, db, "first"),
                batch.run(lambda: add(db, "refused", then_fail=True)),
                batch.run(add, db, "third"),
                return_exceptions=True,
            )
        )

    first, refused, third = run_async(turn())
    assert (first, third) == ("first", "third")
    assert isinstance(refused, ValueError)
    assert names(db) == ["first", "third"]


def test_calls_of_one_batch_see_each_others_writes(db: Database) -> None:
    """Inside one uncommitted batch, a later call finds what an earlier one wrote: check-then-write stays safe."""
    batch = db.group_commit
    assert batch is not None

    def add_unless_present(name: str) -> bool:
        with db.write() as store:
            if store.sql.scalar("SELECT count(*) FROM notes WHERE name = :name", name=name):
                return False
            store.sql.run("INSERT INTO notes (name) VALUES (:name)", name=name)
            return True

    async def turn() -> list[bool]:
        return list(await asyncio.gather(*(batch.run(add_unless_present, "same") for _ in range(5))))

    assert run_async(turn()) == [True, False, False, False, False]
    assert names(db) == ["same"]


def test_a_failed_commit_fails_every_call_and_stores_nothing(db: Database) -> None:
    batch = db.group_commit
    assert batch is not None

    def defer_a_broken_constraint() -> None:
        # A deferred foreign key is checked at COMMIT: the whole batch's commit fails.
        with db.write() as store:
            store.sql.run("PRAGMA defer_foreign_keys = ON")
            store.sql.run("CREATE TABLE IF NOT EXISTS owned (owner TEXT REFERENCES notes(name))")
            store.sql.run("INSERT INTO owned (owner) VALUES ('nobody')")

    async def turn() -> list[object]:
        return list(
            await asyncio.gather(
                batch.run(add, db, "innocent"),
                batch.run(defer_a_broken_constraint),
                return_exceptions=True,
            )
        )

    outcomes = run_async(turn())
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    assert names(db) == []


def test_waiting_for_another_process_does_not_stop_the_event_loop(db: Database, tmp_path: Path) -> None:
    """While another server process holds the write lock, this one keeps serving; its write lands after."""
    other_process = Database(f"sqlite:///{tmp_path / 'chatgate.db'}")  # its own lock file handle, like a process
    others_lock, batch = other_process.writer_lock, db.group_commit
    assert others_lock is not None and batch is not None
    others_lock.acquire()
    released = threading.Event()

    def release() -> None:
        others_lock.release()
        released.set()

    async def scenario() -> tuple[int, str]:
        pending = asyncio.ensure_future(batch.run(add, db, "after"))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert not pending.done()
        threading.Thread(target=release).start()
        return ticks, await asyncio.wait_for(pending, 5)

    assert run_async(scenario()) == (20, "after")
    assert released.is_set()
    assert names(db) == ["after"]
    other_process.dispose()
