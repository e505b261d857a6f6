"""Running a scenario against the PostgreSQL adapter itself, on a real database (no server around it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from async_tools import run_async
from chatgate.storage.postgres import PostgresStorage

T = TypeVar("T")


def with_storage(url: str, scenario: Callable[[PostgresStorage], Awaitable[T]]) -> T:
    """``scenario`` run on a started adapter with a pool of two connections, closed afterwards."""

    async def run() -> T:
        storage = PostgresStorage(url, pool_size=2)
        await storage.start()
        try:
            return await scenario(storage)
        finally:
            await storage.close()

    return run_async(run())
