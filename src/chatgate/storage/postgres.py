"""The PostgreSQL adapter: asyncpg on the event loop, a pool of kept connections.

Nothing waits on the network with the loop blocked: every statement is
awaited. Statements are prepared once per connection (asyncpg's cache); a
read is one round trip per statement, with no BEGIN/COMMIT around it; a
write is one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from chatgate.errors import StorageUnavailable
from chatgate.storage.repositories import Store
from chatgate.storage.sql import PostgresSql

WARM_UP_SECONDS = 5
# A request waits no longer than this for a new connection (asyncpg's default is 60 s).
CONNECT_TIMEOUT_SECONDS = 10
# What a connection lost mid-statement raises, as opposed to a statement the database refused.
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)


@dataclass(frozen=True)
class PoolUsage:
    size: int  # connections open
    idle: int
    max_size: int


def dsn_of(url: str) -> str:
    """``postgresql+psycopg://user:pw@host:port/db?…`` as a libpq-style DSN asyncpg reads."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _init_connection(connection: Any) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads
        )


class PostgresStorage:
    def __init__(self, url: str, pool_size: int) -> None:
        self.dsn = dsn_of(url)
        self.pool_size = pool_size
        self._pool: Any = None

    async def start(self) -> None:
        """Open the pool, and one connection if the database answers.

        A worker that starts (or is restarted) while the database is away
        starts all the same: it answers 503 at /healthz, and its pool connects
        when the database is back. (``chatgate serve`` has checked the
        database before starting any worker.)
        """
        if self._pool is None:
            # No floor of kept connections: asyncpg would log a traceback each time it failed to restore it.
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=self.pool_size,
                init=_init_connection,
                max_inactive_connection_lifetime=0,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
            with contextlib.suppress(Exception):
                async with asyncio.timeout(WARM_UP_SECONDS):
                    await self.ping()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        try:
            connection = await self._pool.acquire()
        except Exception as exc:  # no connection to be had: the database is away, not the request at fault
            raise StorageUnavailable(exc) from exc
        try:
            yield Store(PostgresSql(connection))
        except CONNECTION_LOST as exc:
            raise StorageUnavailable(exc) from exc
        finally:
            await self._pool.release(connection)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        try:
            connection = await self._pool.acquire()
        except Exception as exc:  # as in read()
            raise StorageUnavailable(exc) from exc
        try:
            async with connection.transaction():
                yield Store(PostgresSql(connection))
        except CONNECTION_LOST as exc:
            raise StorageUnavailable(exc) from exc
        finally:
            await self._pool.release(connection)

    async def ping(self) -> None:
        async with self.read() as tx:
            await tx.sql.scalar("SELECT 1")

    def pool_usage(self) -> PoolUsage | None:
        if self._pool is None:
            return None
        return PoolUsage(self._pool.get_size(), self._pool.get_idle_size(), self._pool.get_max_size())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
