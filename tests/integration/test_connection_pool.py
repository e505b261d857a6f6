"""The PostgreSQL adapter's connection pool, on a real database: requests are served in the order they
came, a cancelled or broken connection is replaced rather than handed on, and nothing leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from async_tools import run_async
from chatgate.storage.connection_pool import ConnectionPool, PoolClosed
from chatgate.storage.postgres import dsn_of

T = TypeVar("T")


async def _nothing(_connection: Any) -> None:
    return None


def with_pool(url: str, size: int, scenario: Callable[[ConnectionPool], Awaitable[T]]) -> T:
    async def run() -> T:
        pool = ConnectionPool(dsn_of(url), size, connect_timeout=10, init=_nothing)
        try:
            return await scenario(pool)
        finally:
            await pool.close()

    return run_async(run())


async def backend_pid(pool: ConnectionPool) -> int:
    async with pool.connection() as connection:
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


def test_waiting_requests_are_served_in_the_order_they_came(postgres_database: str) -> None:
    async def scenario(pool: ConnectionPool) -> list[int]:
        served: list[int] = []

        async def request(number: int) -> None:
            async with pool.connection() as connection:
                await connection.fetchval("SELECT 1")
                served.append(number)

        async with pool.connection():
            waiting = []
            for number in range(5):
                waiting.append(asyncio.create_task(request(number)))
                await asyncio.sleep(0.01)  # each has queued before the next comes
        await asyncio.gather(*waiting)
        assert pool.size == 1
        return served

    assert with_pool(postgres_database, 1, scenario) == [0, 1, 2, 3, 4]


def test_a_request_that_goes_before_others_is_served_next(postgres_database: str) -> None:
    async def scenario(pool: ConnectionPool) -> list[str]:
        served: list[str] = []

        async def request(name: str, before_others: bool) -> None:
            async with pool.connection(before_others=before_others) as connection:
                await connection.fetchval("SELECT 1")
                served.append(name)

        async with pool.connection():
            waiting = []
            for name, first in (("request 1", False), ("request 2", False), ("notices", True)):
                waiting.append(asyncio.create_task(request(name, first)))
                await asyncio.sleep(0.01)
        await asyncio.gather(*waiting)
        return served

    assert with_pool(postgres_database, 1, scenario) == ["notices", "request 1", "request 2"]


def test_a_request_cancelled_while_waiting_takes_no_connection_with_it(postgres_database: str) -> None:
    async def scenario(pool: ConnectionPool) -> tuple[int, int]:
        async with pool.connection():
            impatient = asyncio.create_task(backend_pid(pool))
            await asyncio.sleep(0.05)
            impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        async with asyncio.timeout(2):  # the connection is free, not lost with the cancelled request
            await backend_pid(pool)
        return pool.size, pool.idle

    assert with_pool(postgres_database, 1, scenario) == (1, 1)


def backend_pids_around(url: str, mishap: Callable[[ConnectionPool, int], Awaitable[None]]) -> tuple[int, int]:
    """The backend of a one-connection pool before ``mishap`` befalls its connection, and after."""

    async def scenario(pool: ConnectionPool) -> tuple[int, int]:
        before = await backend_pid(pool)
        await mishap(pool, before)
        async with asyncio.timeout(2):  # not stuck behind what befell the first connection
            after = await backend_pid(pool)
        assert pool.size == 1
        return before, after

    return with_pool(url, 1, scenario)


def test_a_connection_cancelled_mid_statement_is_replaced(postgres_database: str) -> None:
    async def cancel_a_statement(pool: ConnectionPool, _backend: int) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), pool.connection() as connection:
                await connection.execute("SELECT pg_sleep(5)")

    before, after = backend_pids_around(postgres_database, cancel_a_statement)
    assert before != after


def test_a_connection_the_database_closed_is_replaced(postgres_database: str) -> None:
    async def terminate_it(_pool: ConnectionPool, backend: int) -> None:
        admin = ConnectionPool(dsn_of(postgres_database), 1, connect_timeout=10, init=_nothing)
        async with admin.connection() as connection:
            await connection.execute("SELECT pg_terminate_backend($1)", backend)
        await admin.close()
        await asyncio.sleep(0.2)  # the idle connection hears that it was closed

    before, after = backend_pids_around(postgres_database, terminate_it)
    assert before != after


def test_a_transaction_left_open_is_rolled_back_before_the_next_request(postgres_database: str) -> None:
    async def scenario(pool: ConnectionPool) -> tuple[bool, int]:
        async with pool.connection() as connection:
            await connection.execute("BEGIN")
            await connection.execute("CREATE TEMP TABLE left_open (x int)")
        async with pool.connection() as connection:
            missing = await connection.fetchval("SELECT to_regclass('pg_temp.left_open')")
            return connection.is_in_transaction(), 0 if missing is None else 1

    assert with_pool(postgres_database, 1, scenario) == (False, 0)


def test_requests_waiting_when_the_pool_closes_are_told(postgres_database: str) -> None:
    async def scenario(pool: ConnectionPool) -> None:
        async with pool.connection():
            waiting = asyncio.create_task(backend_pid(pool))
            await asyncio.sleep(0.05)
            await pool.close()
        with pytest.raises(PoolClosed):
            await waiting
        with pytest.raises(PoolClosed):
            await backend_pid(pool)

    with_pool(postgres_database, 1, scenario)
