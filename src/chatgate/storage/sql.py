"""Plain SQL on a DBAPI connection, the same text for SQLite and PostgreSQL.

The schema is SQLAlchemy's (tables.py, Alembic), but statements on the hot
paths run here: SQLAlchemy Core costs ~100 µs per statement in Python, the
driver alone ~5 µs on SQLite. Queries are written with ``:name`` parameters
and translated once for psycopg; values are converted at this edge only
(SQLite keeps datetimes as text and JSON as text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


@lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


class Sql:
    """One DBAPI connection inside one transaction."""

    def __init__(self, dbapi_connection: Any, dialect: str) -> None:
        self.raw = dbapi_connection
        self.postgres = dialect == "postgresql"

    def _execute(self, sql: str, params: Mapping[str, Any]) -> Any:
        cursor = self.raw.cursor()
        if self.postgres:
            cursor.execute(_pyformat(sql), {k: self._pg(v) for k, v in params.items()})
        else:
            cursor.execute(sql, {k: self._lite(v) for k, v in params.items()})
        return cursor

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        cursor = self._execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scalar(self, sql: str, **params: Any) -> Any:
        row = self._execute(sql, params).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, **params: Any) -> int:
        """Execute; the number of rows changed."""
        return int(self._execute(sql, params).rowcount)

    # -- values ------------------------------------------------------------

    @staticmethod
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

    @staticmethod
    def _pg(value: Any) -> Any:
        if isinstance(value, dict | list):
            from psycopg.types.json import Json

            return Json(value)
        return value

    def when(self, value: Any) -> datetime | None:
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
