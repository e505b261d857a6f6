"""The engine and its transactions: SQLite (WAL) by default, PostgreSQL by URL.

Services run in worker threads and use plain blocking connections: one thread
hop per request instead of one per statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from chatgate.storage.repositories import Store


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
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves, so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writes: a deferred transaction that later writes
        # can fail at once with "database is locked" instead of waiting its turn.
        immediate = conn.get_execution_options().get("chatgate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    def __init__(self, url: str, pool_size: int = 16) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size)
        self.dialect = self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Store]:
        """One transaction that may write; committed when the block ends without error."""
        with self.engine.connect() as conn:
            conn.execution_options(chatgate_write=True)
            with conn.begin():
                yield Store(conn, self.dialect)

    @contextmanager
    def read(self) -> Iterator[Store]:
        with self.engine.connect() as conn, conn.begin():
            yield Store(conn, self.dialect)

    def dispose(self) -> None:
        self.engine.dispose()
