"""Group commit: on SQLite, the service calls that queue in one event-loop turn share one commit.

SQLite admits one writer across all server processes. Before this, every
sign-in took the write lock, ran its statements, committed and let go, and a
process whose turn had not come sat blocked in ``flock`` with its whole event
loop stopped (a fifth of a loaded worker's time, measured with py-spy).

Now a write call joins a queue and waits without blocking the loop. One task
per process takes the lock (in a helper thread when another process holds
it, so this process keeps reading requests and answering reads meanwhile),
opens one transaction, runs every queued call, each inside its own savepoint
(``Database.write`` inside a batch), and commits once. A call's answer is
released only after that commit, so nobody is told of a write that is not
stored; a call that fails rolls back to its savepoint and leaves the others'
writes alone; a failed commit fails every call of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from chatgate.storage.database import Database

T = TypeVar("T")

# Enough for every connection of a loaded server; a bound keeps one turn's latency bounded.
MAX_CALLS_PER_COMMIT = 256


@dataclass
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    answer: asyncio.Future[Any]


class GroupCommit:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Call] = []
        self._draining: asyncio.Task[None] | None = None
        self._lock_waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatgate-sqlite-lock")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the next batch; its result once the batch has committed."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Call(fn, args, answer))
        if self._draining is None or self._draining.done():
            # Started as a task, it first runs after this turn: every call queued in the turn joins.
            self._draining = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            lock = self._db.writer_lock
            if lock is not None and not lock.try_acquire():
                await loop.run_in_executor(self._lock_waiter, lock.acquire)
            try:
                calls, self._queue = self._queue[:MAX_CALLS_PER_COMMIT], self._queue[MAX_CALLS_PER_COMMIT:]
                self._run_batch(calls)
            finally:
                if lock is not None:
                    lock.release()

    def _run_batch(self, calls: list[_Call]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._db.batch():
                for call in calls:
                    try:
                        outcomes.append((True, call.fn(*call.args)))
                    except Exception as exc:  # the call's own refusal or bug: it alone fails
                        outcomes.append((False, exc))
        except Exception as exc:  # the commit failed: nothing of the batch is stored
            outcomes = [(False, exc)] * len(calls)
        for call, (ok, value) in zip(calls, outcomes, strict=True):
            if call.answer.done():  # its request went away; the work stands, like any finished write
                continue
            if ok:
                call.answer.set_result(value)
            else:
                call.answer.set_exception(value)

    def close(self) -> None:
        self._lock_waiter.shutdown(wait=False, cancel_futures=True)
