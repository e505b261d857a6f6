"""The PostgreSQL adapter: asyncpg on the event loop, a pool of kept connections (connection_pool.py).

Nothing waits on the network with the loop blocked: every statement is
awaited. Statements are prepared once per connection (asyncpg's cache).

Round trips are what a login costs here, so a write transaction is opened
lazily. Under READ COMMITTED every statement sees the latest commits whether
or not a transaction is open, so reads before the first write run without
BEGIN; writes nobody reads the outcome of (session and audit rows, the seat
count of a project without a limit) wait, and are sent together, as one
statement, when a later statement needs them or at commit. A statement
whose conditions decide whether it writes (``guarded_write_each``: most
token logins, see repositories.py) is sent alone when nothing was written
before it: a returning user's login is then one round trip instead of six,
and the logins of the requests that reach it in one turn of the event loop
share that round trip (statement_batches.py). The transaction takes its
pooled connection only when it first sends a statement of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from chatgate.domain.conversations import Event
from chatgate.errors import StorageUnavailable
from chatgate.storage.connection_pool import ConnectionPool
from chatgate.storage.conversation_repos import NOTIFY_CHANNEL, notice_of
from chatgate.storage.planner_statistics import keep_statistics
from chatgate.storage.repositories import CommitHook, Store
from chatgate.storage.sql import PostgresSql, numbered
from chatgate.storage.statement_batches import Columns, StatementBatches, run_over_input

log = logging.getLogger("chatgate")

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
        self._pool: ConnectionPool | None = None
        self.committed = CommitHook()
        self._notices: list[str] = []
        self._announcer: asyncio.Task[None] | None = None
        self._statistics: asyncio.Task[None] | None = None
        self._batches = StatementBatches(lambda: self._connection(before_others=True))

    async def start(self) -> None:
        """Open the pool, and one connection if the database answers.

        A worker that starts (or is restarted) while the database is away
        starts all the same: it answers 503 at /healthz, and its pool connects
        when the database is back. (``chatgate serve`` has checked the
        database before starting any worker.)
        """
        if self._pool is None:
            self._pool = ConnectionPool(
                self.dsn, self.pool_size, connect_timeout=CONNECT_TIMEOUT_SECONDS, init=_init_connection
            )
            with contextlib.suppress(Exception):
                async with asyncio.timeout(WARM_UP_SECONDS):
                    await self.ping()
            self._statistics = asyncio.get_running_loop().create_task(keep_statistics(self._connection))

    @asynccontextmanager
    async def _connection(self, *, before_others: bool = False) -> AsyncIterator[Any]:
        """A pooled connection; losing the database is StorageUnavailable (503), not the request's fault."""
        if self._pool is None:
            raise StorageUnavailable(RuntimeError("the storage is not started"))
        lent = False
        try:
            async with self._pool.connection(before_others=before_others) as connection:
                lent = True
                yield connection
        except Exception as exc:
            if not lent or isinstance(exc, CONNECTION_LOST):  # no connection to be had, or it broke
                raise StorageUnavailable(exc) from exc
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Store]:
        async with self._connection() as connection:
            yield Store(PostgresSql(connection))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Store]:
        # The connection is taken at the first statement that needs one: a login whose one statement
        # goes in a batch takes none of its own.
        async with contextlib.AsyncExitStack() as held:
            transaction = LazyTransaction(lambda: held.enter_async_context(self._connection()), self._batches)
            store = Store(transaction)
            try:
                yield store
            except BaseException:
                await transaction.roll_back()
                raise
            await transaction.commit()
        if store.events.added:
            self._announce_later(store.events.added)
        self.committed.publish(store.events.added)

    @asynccontextmanager
    async def rehearsal(self) -> AsyncIterator[Store]:
        """A transaction begun at once (so that no statement of it commits alone) and always rolled back."""
        async with self._connection() as connection:
            transaction = LazyTransaction(_given(connection), self._batches)
            await transaction.begin()
            try:
                yield Store(transaction)
            finally:
                await transaction.roll_back()

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[PostgresSql]:
        """For one statement that is atomic on its own (a rate count): committed as it runs, one round trip."""
        async with self._connection() as connection:
            yield PostgresSql(connection)

    def _announce_later(self, events: list[Event]) -> None:
        """NOTIFY the listening processes of committed events: soon, in batches, off the request.

        Inside the events' transaction a NOTIFY would hold PostgreSQL's notify
        lock through that transaction's WAL flush, and every message would
        commit alone. Sent afterwards, the notices of all the requests that
        commit meanwhile go in one statement whose commit is not waited for
        (a notice is worth nothing after a crash). The batch takes a pooled
        connection ahead of the requests waiting for one: behind them it
        waited as long as a request, and every process's listeners, which
        hand events on in seq order, held back the events after it. (A
        connection of its own cost more: sent at once, batches were smaller,
        and each notification wakes every listener.) A notice that is lost
        (this process dies first) is found by the listeners in the table.
        """
        self._notices.extend(notice_of(event) for event in events)
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        while self._notices:
            batch, self._notices = self._notices, []
            try:
                async with self._connection(before_others=True) as connection:
                    await connection.execute(
                        "SELECT pg_notify($1, notice) FROM (SELECT set_config('synchronous_commit', 'off', true))"
                        " AS no_wait, unnest($2::text[]) AS notice",
                        NOTIFY_CHANNEL,
                        batch,
                    )
            except Exception:
                log.warning("could not announce %d committed event(s); the listeners will read them", len(batch))

    async def ping(self) -> None:
        async with self.read() as tx:
            await tx.sql.scalar("SELECT 1")

    def pool_usage(self) -> PoolUsage | None:
        if self._pool is None:
            return None
        return PoolUsage(self._pool.size, self._pool.idle, self._pool.max_size)

    async def close(self) -> None:
        await self._batches.close()
        if self._statistics is not None:
            self._statistics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._statistics
            self._statistics = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class LazyTransaction(PostgresSql):
    """A write transaction that takes its connection and sends BEGIN only when needed, and batches late INSERTs."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], batches: StatementBatches) -> None:
        super().__init__(None)
        self._connect = connect
        self._batches = batches
        self._begun = False
        self._finished = False  # last_write has run: nothing more is written
        self._later: list[tuple[str, dict[str, Any]]] = []

    async def _connected(self) -> None:
        if self.connection is None:
            self.connection = await self._connect()

    async def write_later(self, sql: str, **params: Any) -> None:
        if self._finished:
            raise RuntimeError("a write after the transaction's last write")
        self._later.append((sql, params))

    async def _before(self, sql: str) -> None:
        """Make what this statement may see or change consistent: inserts sent, transaction open for writes."""
        if self._finished and not _is_read(sql):
            raise RuntimeError("a write after the transaction's last write")
        await self._connected()
        if self._later or not _is_read(sql):
            await self._begin()
            await self._flush()

    async def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        await self._before(sql)
        return await super().one(sql, **params)

    async def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        await self._before(sql)
        return await super().all(sql, **params)

    async def scalar(self, sql: str, **params: Any) -> Any:
        await self._before(sql)
        return await super().scalar(sql, **params)

    async def run(self, sql: str, **params: Any) -> int:
        await self._before(sql)
        return await super().run(sql, **params)

    async def run_unless_duplicate(self, sql: str, **params: Any) -> int | None:
        """Inside a savepoint: a unique key's refusal would otherwise abort the whole transaction."""
        await self._before(sql)
        await self.connection.execute("SAVEPOINT unless_duplicate")
        changed = await super().run_unless_duplicate(sql, **params)
        undo = "ROLLBACK TO SAVEPOINT" if changed is None else "RELEASE SAVEPOINT"
        await self.connection.execute(f"{undo} unless_duplicate")
        return changed

    async def last_write(self, sql: str, **params: Any) -> dict[str, Any] | None:
        row = await self._alone_if_first(sql, params)
        self._finished = True
        return row

    async def guarded_write_each(self, sql: str, columns: Columns, values: Mapping[str, Any]) -> dict[str, Any] | None:
        row = await self._each(sql, columns, values)
        if row is not None and row["wrote"]:
            self._finished = True
        return row

    async def last_write_each(self, sql: str, columns: Columns, values: Mapping[str, Any]) -> dict[str, Any] | None:
        row = await self._each(sql, columns, values)
        self._finished = True
        return row

    async def _each(self, sql: str, columns: Columns, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Inside the transaction if it has written; else in the next batch of this statement, atomic on its own."""
        if self._finished:
            raise RuntimeError("a write after the transaction's last write")
        if self._begun or self._later:
            await self._before(sql)
            return (await run_over_input(self.connection, sql, columns, [values])).get(1)
        return await self._batches.run(sql, columns, values)

    async def _alone_if_first(self, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Inside the transaction if it has written; else sent alone, atomic on its own."""
        if self._finished:
            raise RuntimeError("a write after the transaction's last write")
        if self._begun or self._later:
            return await self.one(sql, **params)
        await self._connected()
        return await PostgresSql.one(self, sql, **params)

    async def commit(self) -> None:
        if self.connection is None and not self._later:
            return  # nothing was sent, nothing waits
        await self._connected()
        if not self._begun:
            await self._flush()  # one statement: atomic without BEGIN/COMMIT
            return
        await self._flush()
        await self.connection.execute("COMMIT")

    async def roll_back(self) -> None:
        self._later.clear()
        if self._begun:
            await self.connection.execute("ROLLBACK")

    async def begin(self) -> None:
        """Open the transaction now rather than before the first write."""
        await self._begin()

    async def _begin(self) -> None:
        if not self._begun:
            await self._connected()
            await self.connection.execute("BEGIN")
            self._begun = True

    async def _flush(self) -> None:
        if not self._later:
            return
        statements, self._later = self._later, []
        text, names = _combined(tuple(sql for sql, _ in statements))
        values = {f"p{i}_{name}": value for i, (_, params) in enumerate(statements) for name, value in params.items()}
        await self.connection.execute(text, *(values[name] for name in names))


def _is_read(sql: str) -> bool:
    """A plain read, which needs no open transaction (a locking read does)."""
    return sql.lstrip()[:6].upper() == "SELECT" and not sql.rstrip().upper().endswith(_ROW_LOCKS)


_ROW_LOCKS = ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE")


@lru_cache(maxsize=128)
def _combined(statements: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Several INSERTs and UPDATEs as one statement (data-modifying CTEs), each one's parameters renamed apart."""
    renamed = [_prefixed(sql, f"p{i}_") for i, sql in enumerate(statements)]
    if len(renamed) == 1:
        return numbered(renamed[0])
    parts = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(renamed))
    return numbered(f"WITH {parts} SELECT 1")


def _prefixed(sql: str, prefix: str) -> str:
    text, names = numbered(sql)
    for position in range(len(names), 0, -1):  # $10 before $1
        text = text.replace(f"${position}", f":{prefix}{names[position - 1]}")
    return text


def _given(connection: Any) -> Callable[[], Awaitable[Any]]:
    """A transaction's ``connect`` for a connection already taken."""

    async def connect() -> Any:
        return connection

    return connect
