"""The PostgreSQL adapter's pool: kept asyncpg connections, handed out in turn.

asyncpg's own pool wraps each connection in a proxy and each release in a
task (``asyncio.shield``) with its own reset; on this project's 2-core bench
machine that cost ~110 µs of CPU per request, twice the round trip it served.
Here taking a free connection is a list pop and giving it back an append or
a hand-over to the longest-waiting request (first come, first served), with
a ROLLBACK only when a transaction was left open.

A connection whose user was cancelled mid-statement, or that the database
closed, is not reused: it is terminated and its place freed for a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

Connection = Any  # asyncpg.Connection; asyncpg ships no type information


class PoolClosed(RuntimeError):
    """The pool was closed while a request waited for a connection."""


class ConnectionPool:
    def __init__(
        self,
        dsn: str,
        max_size: int,
        *,
        connect_timeout: float,
        init: Callable[[Connection], Awaitable[None]],
    ) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self._connect_timeout = connect_timeout
        self._init = init
        self._idle: list[Connection] = []
        # A waiter gets a connection, or None: a place came free, open a connection yourself.
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._size = 0  # connections open or being opened
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def idle(self) -> int:
        return len(self._idle)

    @asynccontextmanager
    async def connection(self, *, before_others: bool = False) -> AsyncIterator[Connection]:
        """A connection; ``before_others`` goes ahead of the requests already waiting for one."""
        connection = await self._acquire(before_others)
        try:
            yield connection
        except Exception:  # a statement refused, or ours between statements: the connection is fine
            await self._release(connection, reusable=True)
            raise
        except BaseException:  # cancelled mid-statement: what the connection is doing is unknown
            await self._release(connection, reusable=False)
            raise
        await self._release(connection, reusable=True)

    async def _acquire(self, before_others: bool) -> Connection:
        while True:
            if self._closed:
                raise PoolClosed("the connection pool is closed")
            while self._idle:
                connection = self._idle.pop()  # the most recently used: warm, and the others may idle
                if not connection.is_closed():
                    return connection
                self._size -= 1  # the database closed it while it was idle
            if self._size < self.max_size:
                return await self._open()
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            if before_others:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                connection = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    await self._release(waiter.result(), reusable=True)  # handed over as we were cancelled
                elif waiter.done() and not waiter.cancelled():
                    self._free_place()  # the free place we were told of goes to the next one
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if connection is not None:
                return connection

    async def _open(self) -> Connection:
        self._size += 1
        try:
            connection = await asyncpg.connect(self.dsn, timeout=self._connect_timeout)
            try:
                await self._init(connection)
            except BaseException:
                connection.terminate()
                raise
        except BaseException:
            self._size -= 1
            self._free_place()
            raise
        return connection

    async def _release(self, connection: Connection, reusable: bool) -> None:
        try:
            if reusable and not connection.is_closed() and connection.is_in_transaction():
                await connection.execute("ROLLBACK")
        except BaseException:
            reusable = False
            raise
        finally:
            self._put_back(connection, reusable)

    def _put_back(self, connection: Connection, reusable: bool) -> None:
        if self._closed or not reusable or connection.is_closed():
            connection.terminate()
            self._size -= 1
            self._free_place()
        elif not self._hand_over(connection):
            self._idle.append(connection)

    def _free_place(self) -> None:
        """A connection closed: the longest waiter may open a new one."""
        self._hand_over(None)

    def _hand_over(self, connection: Connection | None) -> bool:
        """Give the first waiter still waiting a connection (None: a free place); False if none waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._size -= 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
            if not connection.is_closed():
                connection.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("the connection pool is closed"))
