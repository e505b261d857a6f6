"""The SQLite adapter: WAL, reads on the event loop's own connection, writes in group commits.

A statement answered from SQLite's page cache takes microseconds, less than
a hop to a thread, so reads run on the loop; what can wait on the disk or on
another process (the write lock, the commit) runs in a helper thread
(group_commit.py).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chatgate.storage.group_commit import GroupCommit
from chatgate.storage.repositories import CommitHook, Store
from chatgate.storage.sql import SqliteSql


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are opened explicitly), WAL, foreign keys on."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


class SqliteWriterLock:
    """Queue SQLite writers in the kernel instead of in SQLite's busy handler.

    SQLite has one writer at a time; its busy handler makes the others sleep
    1, 2, 5 … 100 ms and retry, which under load turns a 0.3 ms transaction
    into a 100 ms wait. A thread lock orders this process's writers and an
    flock on a file beside the database orders the processes, so each writer
    wakes the moment the previous one commits.
    """

    def __init__(self, database_file: str) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(f"{database_file}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        self._threads.acquire()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if not self._threads.acquire(blocking=False):
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._threads.release()
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        os.close(self._fd)


class _Rehearsed(Exception):
    """Ends a rehearsal's unit the way an error does: rolled back."""


class SqliteStorage:
    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._reader: sqlite3.Connection | None = None
        self._lock = SqliteWriterLock(path) if path != ":memory:" else None
        self._group = GroupCommit(lambda: connect(path), self._lock)
        self.committed = CommitHook()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        # Statements run in autocommit; blocks may interleave on this connection without harm.
        if self._reader is None:
            self._reader = connect(self.path)
        yield Store(SqliteSql(self._reader))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        async with self._group.unit() as connection:
            store = Store(SqliteSql(connection))
            yield store
        self.committed.publish(store.events.added)

    @asynccontextmanager
    async def rehearsal(self) -> AsyncIterator[Store]:
        """A unit of the group commit that always rolls back to its savepoint: the batch's others commit."""
        try:
            async with self._group.unit() as connection:
                yield Store(SqliteSql(connection))
                raise _Rehearsed
        except _Rehearsed:
            pass

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[SqliteSql]:
        """For one statement that is atomic on its own (a rate count): a unit of the group commit."""
        async with self._group.unit() as connection:
            yield SqliteSql(connection)

    async def ping(self) -> None:
        async with self.read() as tx:
            await tx.sql.scalar("SELECT 1")

    async def start(self) -> None:
        return None

    def pool_usage(self) -> None:
        """No pool: one reading connection and the group commit's writer."""
        return None

    async def close(self) -> None:
        self._group.close()
        if self._lock is not None:
            self._lock.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
