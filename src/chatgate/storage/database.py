"""The engine and its transactions: SQLite (WAL) by default, PostgreSQL by URL.

Services use plain blocking connections and, unless CHATGATE_DB_IN_THREADS is
set, run on the event loop: each statement takes microseconds (SQLite) or a
local round trip (PostgreSQL), less than a hop to a worker thread. On SQLite
the loop's write calls are batched into one commit (group_commit.py).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from chatgate.storage.group_commit import GroupCommit
from chatgate.storage.repositories import Store
from chatgate.storage.sql import Sql

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite stays as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 16) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **_kept_pool(pool_size), connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, **_kept_pool(pool_size))


def _kept_pool(pool_size: int) -> dict[str, int]:
    """One connection per worker thread (app.py allows ``pool_size`` of them) and one for the event loop.

    Connections are costly to open (WAL set-up on SQLite, a forked backend on
    PostgreSQL) and cheap to keep, so the pool never opens more and never
    closes any: with overflow connections, a loaded PostgreSQL server spent its
    time opening and closing them (p99 0.5 s).
    """
    return {"pool_size": pool_size + 1, "max_overflow": 0, "pool_timeout": 60}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: Database opens each transaction itself, so
        # writers can take the lock up front (BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


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

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class Database:
    def __init__(self, url: str, pool_size: int = 16, in_threads: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size)
        self.dialect = self.engine.dialect.name
        # Reads take microseconds on SQLite and one local round trip on
        # PostgreSQL: on the event loop they beat a thread hop and the GIL
        # hand-offs around every driver call. Writes on SQLite commit without
        # fsync and one at a time anyway, so they run inline too; PostgreSQL
        # commits wait for fsync and only overlap (group commit) from threads.
        # Measured in bench/README.md. A distant database wants threads for all.
        self.reads_inline = not in_threads
        self.writes_inline = not in_threads and self.dialect == "sqlite"
        database_file = make_url(self.url).database if self.dialect == "sqlite" else None
        self.writer_lock = SqliteWriterLock(database_file) if database_file and database_file != ":memory:" else None
        self.group_commit = GroupCommit(self) if self.writes_inline else None
        self._loop_raw: Any = None
        self._loop_raw_free = True
        # While a group commit runs: its connection, and the thread (the loop's) it runs on.
        self._batch_raw: Any = None
        self._batch_thread: int | None = None

    async def reading(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a call that only reads: on the event loop unless CHATGATE_DB_IN_THREADS is set."""
        if self.reads_inline:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)

    async def writing(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a call that may write: in the next group commit on SQLite, else in a worker thread."""
        if self.group_commit is not None:
            return await self.group_commit.run(fn, *args)
        return await anyio.to_thread.run_sync(fn, *args)

    @contextmanager
    def write(self) -> Iterator[Store]:
        """One transaction that may write; committed when the block ends without error.

        Inside a group commit it is a savepoint of the batch's transaction: rolled
        back alone on error, stored when the batch commits.
        """
        if self._in_batch():
            with self._savepoint() as store:
                yield store
            return
        lock = self.writer_lock.held() if self.writer_lock else nullcontext()
        with lock, self._transaction("BEGIN IMMEDIATE") as store:
            yield store

    @contextmanager
    def read(self) -> Iterator[Store]:
        """A read-only transaction: every statement sees the same snapshot."""
        if self._in_batch():  # the batch holds the write lock: nothing changes under it
            yield Store(Sql(self._batch_raw, self.dialect))
            return
        with self._transaction("BEGIN") as store:
            yield store

    @contextmanager
    def lookup(self) -> Iterator[Store]:
        """For a single read statement: on SQLite it needs no transaction of its own."""
        if self._in_batch():
            yield Store(Sql(self._batch_raw, self.dialect))
            return
        with self._transaction(None) as store:
            yield store

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The one transaction of a group commit (SQLite, writer lock held by the caller)."""
        with self._connection() as raw:
            raw.cursor().execute("BEGIN IMMEDIATE")
            self._batch_raw, self._batch_thread = raw, threading.get_ident()
            try:
                yield
                raw.commit()
            except BaseException:
                raw.rollback()  # a failed COMMIT (a deferred constraint, a full disk) leaves it open
                raise
            finally:
                self._batch_raw = self._batch_thread = None

    def _in_batch(self) -> bool:
        return self._batch_raw is not None and self._batch_thread == threading.get_ident()

    @contextmanager
    def _savepoint(self) -> Iterator[Store]:
        cursor = self._batch_raw.cursor()
        cursor.execute("SAVEPOINT unit")
        try:
            yield Store(Sql(self._batch_raw, self.dialect))
        except BaseException:
            cursor.execute("ROLLBACK TO unit")
            cursor.execute("RELEASE unit")
            raise
        cursor.execute("RELEASE unit")

    @contextmanager
    def _transaction(self, sqlite_begin: str | None) -> Iterator[Store]:
        with self._connection() as raw:
            if sqlite_begin is None and self.dialect == "postgresql":
                # A lone read in autocommit: one round trip instead of BEGIN, SELECT, COMMIT.
                driver = raw.dbapi_connection
                driver.autocommit = True
                try:
                    yield Store(Sql(raw, self.dialect))
                finally:
                    driver.autocommit = False
                return
            if sqlite_begin and self.dialect == "sqlite":
                raw.cursor().execute(sqlite_begin)  # autocommit driver: we open the transaction
            try:
                yield Store(Sql(raw, self.dialect))
                raw.commit()
            except BaseException:
                raw.rollback()
                raise

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        # The event loop's thread keeps one connection for good: inline calls
        # run one at a time there, and a pool checkout costs more than the query.
        if self.reads_inline and threading.current_thread() is threading.main_thread() and self._loop_raw_free:
            if self._loop_raw is None:
                self._loop_raw = self.engine.raw_connection()
            self._loop_raw_free = False
            try:
                yield self._loop_raw
            finally:
                self._loop_raw_free = True
            return
        raw = self.engine.raw_connection()
        try:
            yield raw
        finally:
            raw.close()

    def dispose(self) -> None:
        if self.group_commit is not None:
            self.group_commit.close()
        if self._loop_raw is not None:
            self._loop_raw.close()
            self._loop_raw = None
        self.engine.dispose()
