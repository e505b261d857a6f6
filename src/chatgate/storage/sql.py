"""Plain SQL on one connection, the same text for SQLite and PostgreSQL.

The schema is SQLAlchemy's (tables.py, Alembic); statements run here, on the
driver: SQLAlchemy Core costs ~100 µs per statement in Python. Queries are
written with ``:name`` parameters, translated once per text for asyncpg
(``$1``); values are converted at this edge only (SQLite keeps datetimes and
JSON as text; asyncpg gets JSON through the codec the pool installs).
"""

from __future__ import annotations

import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


class Sql(ABC):
    """One connection inside one transaction (or autocommit, for reads)."""

    dialect: str  # "sqlite" or "postgresql", for the rare statement that must differ

    @abstractmethod
    async def one(self, sql: str, **params: Any) -> dict[str, Any] | None: ...

    @abstractmethod
    async def all(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def scalar(self, sql: str, **params: Any) -> Any: ...

    @abstractmethod
    async def run(self, sql: str, **params: Any) -> int:
        """Execute; the number of rows changed."""

    async def run_unless_duplicate(self, sql: str, **params: Any) -> int | None:
        """Execute an UPDATE; None, with nothing changed and the transaction unharmed, when it would give
        a unique key a value another row holds (one that row's transaction has not committed yet included)."""
        try:
            return await self.run(sql, **params)
        except Exception as exc:
            if not self.is_duplicate(exc):
                raise
            return None

    @staticmethod
    @abstractmethod
    def is_duplicate(exc: Exception) -> bool:
        """Whether the driver's error is a unique key's refusal."""

    async def write_later(self, sql: str, **params: Any) -> None:
        """An INSERT or UPDATE whose outcome nobody reads: it may wait until the transaction commits.

        Later statements of the transaction still see it; a refusal still
        rolls it back. Only PostgreSQL makes use of the delay (postgres.py).
        """
        await self.run(sql, **params)

    async def last_write(self, sql: str, **params: Any) -> dict[str, Any] | None:
        """A statement after which the transaction writes nothing more; its row, as ``one``.

        On PostgreSQL, when nothing was written before it either, it is sent
        alone, atomic on its own, without BEGIN and COMMIT (postgres.py).
        """
        return await self.one(sql, **params)

    async def guarded_write_each(
        self, sql: str, columns: tuple[tuple[str, str], ...], values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A statement that writes only when conditions of its own hold; its row says in a ``wrote`` column
        whether it did. When it wrote, the transaction writes nothing after it.

        PostgreSQL only (SQLite has no round trip to save). It is written
        over ``input``, a relation of one row (``values``, its columns named
        and typed by ``columns``, numbered by ``n``), and returns ``n`` with
        its row. When nothing was written before it, it is sent alone, atomic
        on its own, in one statement with those of other requests
        (statement_batches.py): a transaction whose only write it is needs
        no BEGIN and COMMIT, and one it declines goes on (postgres.py's
        write transaction implements it).
        """
        raise NotImplementedError("a statement over input rows is PostgreSQL's")

    async def last_write_each(
        self, sql: str, columns: tuple[tuple[str, str], ...], values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A ``last_write`` written over ``input`` as ``guarded_write_each`` is, and sent as it is. PostgreSQL
        only."""
        raise NotImplementedError("a statement over input rows is PostgreSQL's")

    @staticmethod
    def when(value: Any) -> datetime | None:
        """A stored time as an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    @staticmethod
    def document(value: Any) -> Any:
        """A stored JSON value as Python data."""
        return json.loads(value) if isinstance(value, str | bytes) else value


class SqliteSql(Sql):
    """sqlite3 answers in microseconds from its page cache: the coroutines never suspend."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def _execute(self, sql: str, params: Mapping[str, Any]) -> sqlite3.Cursor:
        return self.connection.execute(sql, {k: _lite(v) for k, v in params.items()})

    async def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        cursor = self._execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    async def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    async def scalar(self, sql: str, **params: Any) -> Any:
        row = self._execute(sql, params).fetchone()
        return None if row is None else row[0]

    async def run(self, sql: str, **params: Any) -> int:
        return int(self._execute(sql, params).rowcount)

    @staticmethod
    def is_duplicate(exc: Exception) -> bool:
        # A refused statement is undone alone (ON CONFLICT ABORT); the transaction goes on.
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc)


def _lite(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        # "YYYY-MM-DD HH:MM:SS.ffffff", as SQLAlchemy's DateTime writes it on
        # SQLite; isoformat (C) with "+00:00" cut off is faster than strftime.
        return value.isoformat(" ", "microseconds")[:26]
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


@lru_cache(maxsize=512)
def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters as asyncpg's ``$1 … $n``, and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


class PostgresSql(Sql):
    """An asyncpg connection: each statement is one round trip, prepared once per connection."""

    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def _args(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        text, names = numbered(sql)
        return text, [params[name] for name in names]

    async def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        text, args = self._args(sql, params)
        row = await self.connection.fetchrow(text, *args)
        return None if row is None else dict(row)

    async def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        text, args = self._args(sql, params)
        return [dict(row) for row in await self.connection.fetch(text, *args)]

    async def scalar(self, sql: str, **params: Any) -> Any:
        text, args = self._args(sql, params)
        return await self.connection.fetchval(text, *args)

    async def run(self, sql: str, **params: Any) -> int:
        text, args = self._args(sql, params)
        status: str = await self.connection.execute(text, *args)  # "UPDATE 3", "INSERT 0 1", "DELETE 0"
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    @staticmethod
    def is_duplicate(exc: Exception) -> bool:
        return getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION


UNIQUE_VIOLATION = "23505"
