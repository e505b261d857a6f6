"""Group commit: on SQLite, the write units that queue in one event-loop turn share one commit.

SQLite admits one writer across all server processes. A write unit
(``async with storage.write()``) joins a queue and waits without blocking
the loop. One task per process takes the write lock (from a helper thread
when another process holds it, so this process keeps serving meanwhile),
opens one transaction, and lets every queued unit run its block, each inside
its own savepoint; then it commits, also from the helper thread, since a
commit may wait on the disk. A unit's block ends only after that commit, so
nobody is told of a write that is not stored; a unit that fails rolls back
to its savepoint and leaves the others' writes alone; a failed commit fails
every unit of the batch.

A block runs from start to end in one step of the loop: the SQLite
repositories never suspend, and a block awaits nothing else (ports.py).
That is what lets units share the transaction; a block that does suspend
would let another in, and is refused as the programming error it is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

# Enough for every connection of a loaded server; a bound keeps one turn's latency bounded.
MAX_UNITS_PER_COMMIT = 256


class WriterLock(Protocol):
    def acquire(self) -> None: ...
    def try_acquire(self) -> bool: ...
    def release(self) -> None: ...


@dataclass
class _Batch:
    connection: sqlite3.Connection
    pending: int
    all_ran: asyncio.Future[None]
    committed: asyncio.Future[None]
    unit_open: bool = False

    def unit_done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.all_ran.done():
            self.all_ran.set_result(None)


class GroupCommit:
    def __init__(self, connect: Callable[[], sqlite3.Connection], lock: WriterLock | None) -> None:
        self._connect = connect
        self._connection: sqlite3.Connection | None = None
        self._lock = lock
        self._waiting: list[asyncio.Future[_Batch]] = []
        self._draining: asyncio.Task[None] | None = None
        # Waits for the other processes' lock and runs commits: the two things that may block.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatgate-sqlite-commit")

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[sqlite3.Connection]:
        """One write unit: a savepoint of the next batch, ended once the batch has committed."""
        batch = await self._join()
        if batch.unit_open:
            batch.unit_done()
            raise RuntimeError("a write block suspended while another was open: it may await only its repositories")
        batch.unit_open = True
        cursor = batch.connection.cursor()
        cursor.execute("SAVEPOINT unit")
        try:
            yield batch.connection
        except BaseException:
            cursor.execute("ROLLBACK TO unit")
            cursor.execute("RELEASE unit")
            raise
        else:
            cursor.execute("RELEASE unit")
        finally:
            batch.unit_open = False
            batch.unit_done()
        await asyncio.shield(batch.committed)

    async def _join(self) -> _Batch:
        loop = asyncio.get_running_loop()
        seat: asyncio.Future[_Batch] = loop.create_future()
        self._waiting.append(seat)
        if self._draining is None or self._draining.done():
            # Started as a task, it first runs after this turn: every unit queued in the turn joins.
            self._draining = loop.create_task(self._drain())
        try:
            return await seat
        except asyncio.CancelledError:
            if seat.done() and not seat.cancelled():
                seat.result().unit_done()  # given a place it will not use
            raise

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self._connection_for_batch()
        while self._waiting:
            # Taking the lock in the helper thread, never with a non-blocking grab on the loop:
            # a process that has just committed must not win the lock back before the other
            # process's waiting thread has had its turn (it starved the other for seconds).
            await loop.run_in_executor(self._thread, self._begin, connection)
            seats, self._waiting = self._waiting[:MAX_UNITS_PER_COMMIT], self._waiting[MAX_UNITS_PER_COMMIT:]
            batch = _Batch(connection, 0, loop.create_future(), loop.create_future())
            batch.committed.add_done_callback(_retrieve)
            for seat in seats:
                if not seat.done():
                    batch.pending += 1
                    seat.set_result(batch)
            try:
                if batch.pending:
                    await batch.all_ran  # each unit runs its block in the next step of the loop
                await loop.run_in_executor(self._thread, self._commit, connection)
            except Exception as exc:  # a failed COMMIT (a deferred constraint, a full disk): nothing is stored
                await loop.run_in_executor(self._thread, self._roll_back, connection)
                batch.committed.set_exception(exc)
            else:
                batch.committed.set_result(None)

    def _begin(self, connection: sqlite3.Connection) -> None:
        if self._lock is not None:
            self._lock.acquire()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _commit(self, connection: sqlite3.Connection) -> None:
        try:
            connection.commit()
        except BaseException:
            connection.rollback()  # a failed COMMIT leaves the transaction open
            raise
        finally:
            if self._lock is not None:
                self._lock.release()

    def _roll_back(self, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.rollback()
            if self._lock is not None:
                self._lock.release()

    def _connection_for_batch(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _retrieve(future: asyncio.Future[None]) -> None:
    # A failed commit is reported to the units still waiting; mark it seen for the others.
    if not future.cancelled():
        future.exception()
