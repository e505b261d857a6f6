"""Pick the adapter for a database URL: the one place that knows both."""

from __future__ import annotations

from chatgate.storage.engine import sqlite_path
from chatgate.storage.postgres import PostgresStorage
from chatgate.storage.sqlite import SqliteStorage

StorageAdapter = SqliteStorage | PostgresStorage


def open_storage(url: str, pool_size: int) -> StorageAdapter:
    path = sqlite_path(url)
    return SqliteStorage(path) if path is not None else PostgresStorage(url, pool_size)
