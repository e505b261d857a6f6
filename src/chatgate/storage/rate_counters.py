"""Rate-limit counts in the database (the ``rate_counters`` table): the adapter when there is no Redis.

Each hit is one atomic upsert in a write of its own, never inside a login's
transaction: on PostgreSQL one statement committed as it runs, on SQLite a
unit of the group commit (which holds the one write lock of every process).
"""

from __future__ import annotations

from chatgate.storage.postgres import PostgresStorage
from chatgate.storage.repositories import RateCounterRepo
from chatgate.storage.sqlite import SqliteStorage


class DatabaseRateCounter:
    def __init__(self, storage: SqliteStorage | PostgresStorage) -> None:
        self._storage = storage

    async def hit(self, rule: str, key: str, window_start: int, window_end: int) -> int:
        async with self._storage.statement() as sql:
            return await RateCounterRepo(sql).hit(rule, key, window_start, window_end)

    async def forget_finished(self, now: int) -> int:
        async with self._storage.statement() as sql:
            return await RateCounterRepo(sql).forget_finished(now)

    async def ping(self) -> None:
        return None  # the database is the storage's, pinged with it

    async def close(self) -> None:
        return None  # the storage closes its own connections
