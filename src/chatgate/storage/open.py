"""Pick the adapters for the settings: the one place that knows them all."""

from __future__ import annotations

from chatgate.storage.engine import sqlite_path
from chatgate.storage.event_feeds import PostgresEventFeed, SqliteEventFeed
from chatgate.storage.postgres import PostgresStorage
from chatgate.storage.rate_counters import DatabaseRateCounter
from chatgate.storage.redis_counter import RedisRateCounter
from chatgate.storage.sqlite import SqliteStorage

StorageAdapter = SqliteStorage | PostgresStorage


def open_storage(url: str, pool_size: int) -> StorageAdapter:
    path = sqlite_path(url)
    return SqliteStorage(path) if path is not None else PostgresStorage(url, pool_size)


def open_rate_counter(
    redis_url: str | None, storage: SqliteStorage | PostgresStorage, namespace: str
) -> RedisRateCounter | DatabaseRateCounter:
    """Redis when it is configured, else the database every process already shares."""
    return RedisRateCounter(redis_url, namespace) if redis_url else DatabaseRateCounter(storage)


def open_event_feed(storage: StorageAdapter) -> SqliteEventFeed | PostgresEventFeed:
    """How this process hears of the events other processes commit."""
    return SqliteEventFeed(storage) if isinstance(storage, SqliteStorage) else PostgresEventFeed(storage)
