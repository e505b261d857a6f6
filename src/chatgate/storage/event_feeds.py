"""Events committed by other processes, brought to this one (the ``EventFeed`` port).

PostgreSQL: a connection of its own LISTENs on the channel each process
NOTIFYs once its events' transaction has committed; an event too large for
a notification is read back by its seq. While that connection is lost the feed says so
(``connected``), reconnects every second, and then reads what it missed.

SQLite: every process follows the ``events`` table. SQLite has one writer
at a time, so seqs are committed in order and "everything after the last
seq seen" misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from chatgate.domain.conversations import HINT_SEQ, Event
from chatgate.storage.conversation_repos import NOTIFY_CHANNEL, event_from_notice
from chatgate.storage.postgres import PostgresStorage
from chatgate.storage.sqlite import SqliteStorage

log = logging.getLogger("chatgate.live")

Deliver = Callable[[Event], Awaitable[None]]
# How often a SQLite process looks for other processes' events: the added delay, at most.
POLL_SECONDS = 0.005
BATCH = 500
RECONNECT_SECONDS = 1.0
# How long a PostgreSQL event waits for a lower seq committed a moment later.
GAP_WAIT_SECONDS = 0.05
# With no notification for this long, the table is read for events whose notice was lost.
QUIET_CHECK_SECONDS = 1.0


class SqliteEventFeed:
    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return True

    @property
    def epoch(self) -> int:
        return 0

    async def start(self, deliver: Deliver) -> None:
        async with self.storage.read() as tx:
            last = await tx.events.last_seq()
        self._task = asyncio.create_task(self._follow(deliver, last))

    async def _follow(self, deliver: Deliver, last: int) -> None:
        while True:
            found: list[Event] = []
            try:
                async with self.storage.read() as tx:
                    found = await tx.events.after(last, BATCH)
                for event in found:
                    last = event.seq
                    await deliver(event)
            except Exception:  # the next round tries again; a feed that stops would strand every socket
                log.exception("reading the event log failed")
            await asyncio.sleep(POLL_SECONDS if not found else 0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class PostgresEventFeed:
    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self._listener: Any = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._last = 0
        self._connections = 0
        self._lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    @property
    def epoch(self) -> int:
        return self._connections

    async def start(self, deliver: Deliver) -> None:
        with contextlib.suppress(Exception):  # the database may be away at start: _keep_listening retries
            await self._listen()
            async with self.storage.read() as tx:
                self._last = await tx.events.last_seq()
        self._tasks = [
            asyncio.create_task(self._keep_listening(deliver)),
            asyncio.create_task(self._deliver(deliver)),
        ]

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self.storage.dsn, timeout=10)
        await connection.add_listener(NOTIFY_CHANNEL, self._on_notice)
        connection.add_termination_listener(lambda _c: self._lost.set())
        self._listener = connection
        self._connections += 1
        self._lost.clear()

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _deliver(self, deliver: Deliver) -> None:
        """Notifications are sent after each commit, and a seq is taken before it, so events may come
        out of seq order. They wait (at most GAP_WAIT_SECONDS) for a lower seq still to come, so that
        sockets see seqs in order; then the table is read for the missing ones (a notification lost),
        and a seq that is not there either (a rolled-back transaction took it) is skipped."""
        waiting: dict[int, Event] = {}
        while True:
            try:
                async with asyncio.timeout(GAP_WAIT_SECONDS if waiting else QUIET_CHECK_SECONDS):
                    payload = await self._queue.get()
            except TimeoutError:  # a gap no notice filled, or a quiet second: look in the table
                with contextlib.suppress(Exception):
                    await self._fill_from_table(waiting, deliver)
                continue
            try:
                seq, noticed = event_from_notice(payload)
                if seq == HINT_SEQ:  # not stored, not in seq order: for the caches, at once
                    if noticed is not None:
                        await deliver(noticed)
                    continue
                event = noticed or await self._read(seq)
                if event is None:
                    continue
                if event.seq <= self._last:  # after a gap was given up on: late, but not lost
                    await deliver(event)
                    continue
                waiting[event.seq] = event
                await self._release(waiting, deliver)
            except Exception:
                log.exception("delivering an event failed")

    async def _release(self, waiting: dict[int, Event], deliver: Deliver) -> None:
        """Deliver the waiting events that follow the last delivered one without a gap (and any that a
        catch-up after a reconnect went past: the hub skips the ones it has seen)."""
        for seq in sorted(seq for seq in waiting if seq <= self._last):
            await deliver(waiting.pop(seq))
        while self._last + 1 in waiting:
            event = waiting.pop(self._last + 1)
            self._last = event.seq
            await deliver(event)

    async def _fill_from_table(self, waiting: dict[int, Event], deliver: Deliver) -> None:
        """Events committed but never announced (their process died first) join the waiting ones;
        then the oldest gap left is given up on (a rolled-back transaction had taken its seq)."""
        async with self.storage.read() as tx:
            found = await tx.events.after(self._last, BATCH)
        for event in found:
            waiting.setdefault(event.seq, event)
        if waiting:
            self._last = max(self._last, min(waiting) - 1)
            await self._release(waiting, deliver)

    async def _read(self, seq: int) -> Event | None:
        async with self.storage.read() as tx:
            found = await tx.events.after(seq - 1, 1)
        return found[0] if found and found[0].seq == seq else None

    async def _keep_listening(self, deliver: Deliver) -> None:
        while True:
            if self.connected:
                await self._lost.wait()
                log.warning("lost the PostgreSQL connection that listens for events; reconnecting")
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                await self._listen()
                await self._catch_up(deliver)
            except Exception:  # still away: try again in a second
                self._listener = None

    async def _catch_up(self, deliver: Deliver) -> None:
        """What other processes committed while this one was not listening (delivered once: the hub
        skips what it has seen)."""
        async with self.storage.read() as tx:
            missed = await tx.events.after(self._last, BATCH)
        for event in missed:
            await deliver(event)
        if missed:
            self._last = max(self._last, missed[-1].seq)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
