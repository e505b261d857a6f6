"""SQLAlchemy engines for migrations only (Alembic, at start-up): requests never use them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

# A migration must not hang on a database that does not answer.
CONNECT_TIMEOUT_SECONDS = 10
# How long a migration waits for SQLite's write lock (a running server's writes, another migration).
SQLITE_LOCK_TIMEOUT_SECONDS = 30


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite stays as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///…`` URL, else None."""
    parsed = make_url(url)
    return (parsed.database or ":memory:") if parsed.get_backend_name() == "sqlite" else None


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    path = sqlite_path(url)
    if path is None:
        return create_engine(
            url, pool_size=1, max_overflow=0, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        )
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _sqlite_autocommit)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_autocommit(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Python's sqlite3 opens no transaction before DDL: take over, so a failed migration leaves nothing behind.
    dbapi_connection.isolation_level = None
    # WAL is kept in the file. Switched here, before any worker starts: workers that open a new (or
    # restored) file together each try to switch it, and SQLite refuses all but one ("database is
    # locked", without waiting) to avoid a deadlock, so a worker would fail to start.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin_immediate(connection: Connection) -> None:
    # The write lock from the start: two migrations of one file run one after the other.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
