"""PostgreSQL: the one-statement logins of many requests, sent as one statement.

On this project's machines a round trip's cost is mostly its two system
calls (py-spy on a loaded worker: a fifth of its time was the ``write`` of
each login's one statement), and each statement costs PostgreSQL its own
parse, execution start and commit. So the statements that may go alone are
written over a relation ``input``, one row per request (``columns`` names
and types its columns, ``n`` numbers the rows), and return ``n`` with each
result row. The requests that reach such a statement in one turn of the
event loop are sent together: their values as arrays, unnested into
``input``, one statement, one commit. As with SQLite's group commit
(group_commit.py) the requests are independent: their rows do not touch each
other's (a user twice in one batch gets two sessions; ``lastSeenAt`` is
written once). Should the statement be refused, each request's row is sent
again alone, so that one request's refusal is its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import Any

from chatgate.errors import StorageUnavailable
from chatgate.storage.tables import metadata

Columns = tuple[tuple[str, str], ...]  # (name, PostgreSQL type) of each column of ``input``
Row = dict[str, Any]

# Strings go in as text and are cast by the column they are written to: a cast to VARCHAR(n) would cut
# a long value where the column refuses it.
_INPUT_TYPES = {"JSON": "json", "BOOLEAN": "boolean", "INTEGER": "integer", "DATETIME": "timestamptz"}


@lru_cache(maxsize=128)
def input_type(table: str, column: str) -> str:
    """The type of ``input``'s column for a value of ``table.column``."""
    kind = metadata.tables[table].columns[column].type
    return _INPUT_TYPES.get(getattr(kind, "impl", kind).__visit_name__.upper(), "text")


def input_columns(table: str, prefix: str, columns: Sequence[str]) -> Columns:
    """``input``'s columns for values of these columns of ``table``, named by ``prefix`` and the column."""
    return tuple((f"{prefix}{column}", input_type(table, column)) for column in columns)


@lru_cache(maxsize=64)
def over_input(sql: str, columns: Columns) -> str:
    """``sql`` (common table expressions and a SELECT) preceded by ``input``: the argument arrays as rows."""
    arrays = ", ".join(f"${position}::{kind}[]" for position, (_, kind) in enumerate(columns, 1))
    names = ", ".join(name for name, _ in columns)
    return f"WITH input AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS input({names}, n)), {sql}"  # noqa: S608


async def run_over_input(
    connection: Any, sql: str, columns: Columns, rows: Sequence[Mapping[str, Any]]
) -> dict[int, Row]:
    """Each result row by the ``n`` of the input row it answers (rows numbered from 1)."""
    arrays = [[row[name] for row in rows] for name, _ in columns]
    return {result["n"]: dict(result) for result in await connection.fetch(over_input(sql, columns), *arrays)}


class _Waiting:
    __slots__ = ("answer", "values")

    def __init__(self, values: Mapping[str, Any], answer: asyncio.Future[Row | None]) -> None:
        self.values = values
        self.answer = answer


class StatementBatches:
    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._connection = connection  # a pooled connection, losing the database raising StorageUnavailable
        self._open: dict[tuple[str, Columns], list[_Waiting]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, sql: str, columns: Columns, values: Mapping[str, Any]) -> Row | None:
        """The result row for ``values`` (None if there is none), once the batch it joined has committed."""
        loop = asyncio.get_running_loop()
        key = (sql, columns)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = []
            loop.call_soon(self._close, key)  # after the requests already running in this turn
        waiting = _Waiting(values, loop.create_future())
        batch.append(waiting)
        return await waiting.answer

    def _close(self, key: tuple[str, Columns]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(key, self._open.pop(key)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, key: tuple[str, Columns], batch: list[_Waiting]) -> None:
        batch = [waiting for waiting in batch if not waiting.answer.done()]  # a cancelled request writes nothing
        if not batch:
            return
        try:
            try:
                rows = await self._run(key, [waiting.values for waiting in batch])
            except Exception as exc:
                if len(batch) == 1 or isinstance(exc, StorageUnavailable):
                    for waiting in batch:
                        _refuse(waiting, exc)
                else:
                    await self._one_by_one(key, batch)
                return
        except BaseException:
            for waiting in batch:
                waiting.answer.cancel()  # the worker is stopping (a future already answered stays so)
            raise
        for n, waiting in enumerate(batch, 1):
            if not waiting.answer.done():
                waiting.answer.set_result(rows.get(n))

    async def _one_by_one(self, key: tuple[str, Columns], batch: list[_Waiting]) -> None:
        """After a refused batch: each row alone, each request getting its own answer or refusal."""
        for waiting in batch:
            try:
                rows = await self._run(key, [waiting.values])
            except Exception as exc:
                _refuse(waiting, exc)
                continue
            if not waiting.answer.done():
                waiting.answer.set_result(rows.get(1))

    async def _run(self, key: tuple[str, Columns], rows: list[Mapping[str, Any]]) -> dict[int, Row]:
        sql, columns = key
        async with self._connection() as connection:
            return await run_over_input(connection, sql, columns, rows)

    async def close(self) -> None:
        """Wait for the batches being sent (a worker stopping still answers the requests it has)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _refuse(waiting: _Waiting, exc: Exception) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(exc)
