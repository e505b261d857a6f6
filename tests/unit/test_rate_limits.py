"""The rate limiter over each place its counts can live: SQLite, PostgreSQL and Redis, all real."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from async_tools import run_async
from chatgate.domain.rate_limits import parse_rate_rules
from chatgate.errors import RateLimited
from chatgate.services.rate_limits import RateLimiter
from chatgate.storage.migrate import upgrade
from chatgate.storage.open import open_rate_counter, open_storage
from chatgate.storage.rate_counters import DatabaseRateCounter

KEY = b"k" * 32


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[Callable[..., RateLimiter], Any], Awaitable[None]]


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def run_with(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Scenario], None]]:
    """Run a scenario with a factory of limiters that share one place of counts (as processes do)."""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_database")
    else:
        database_url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    upgrade(database_url)
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    namespace = secrets.token_hex(6)  # counts of this test only

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            storage = open_storage(database_url, 4)
            await storage.start()
            counters: list[Any] = []

            def limiter(rules: str, clock: Callable[[], float], pseudonym_key: bytes = KEY) -> RateLimiter:
                counter = open_rate_counter(redis_url, storage, namespace)
                counters.append(counter)
                return RateLimiter(parse_rate_rules(rules), counter, pseudonym_key, clock)

            try:
                await scenario(limiter, storage)
            finally:
                for counter in counters:
                    await counter.close()
                await storage.close()

        run_async(main())

    yield run


def test_counts_per_key_and_tells_when_to_retry(run_with: Callable[[Scenario], None]) -> None:
    async def scenario(limiter: Callable[..., RateLimiter], _storage: Any) -> None:
        clock = Clock(60.0 * (20_000 + secrets.randbelow(10_000)))  # a window just begun
        one, other = limiter("signin_ip=2/60", clock), limiter("signin_ip=2/60", clock)
        ip = f"198.51.100.{secrets.randbelow(250)}"
        await one.hit("signin_ip", ip)
        await other.hit("signin_ip", ip)  # another process, the same budget
        await one.hit("signin_ip", "192.0.2.1" + ip)
        clock.now += 20
        with pytest.raises(RateLimited) as caught:
            await other.hit("signin_ip", ip)
        assert caught.value.retry_after == 41
        with pytest.raises(RateLimited):
            await one.hit("signin_ip", ip)  # refused hits count too
        clock.now += 40  # the next window
        await one.hit("signin_ip", ip)
        await other.hit("signin_ip", ip)
        with pytest.raises(RateLimited):
            await one.hit("signin_ip", ip)

    run_with(scenario)


def test_simultaneous_hits_are_counted_exactly(run_with: Callable[[Scenario], None]) -> None:
    async def scenario(limiter: Callable[..., RateLimiter], _storage: Any) -> None:
        clock = Clock(3600.0 * (600 + secrets.randbelow(10_000)))
        limiters = [limiter("anonymous_ip=20/3600", clock) for _ in range(4)]
        ip = f"203.0.113.{secrets.randbelow(250)}"

        async def attempt(i: int) -> bool:
            try:
                await limiters[i % 4].hit("anonymous_ip", ip)
            except RateLimited:
                return False
            return True

        allowed = await asyncio.gather(*(attempt(i) for i in range(50)))
        assert sum(allowed) == 20

    run_with(scenario)


def test_a_rule_turned_off_counts_nothing(run_with: Callable[[Scenario], None]) -> None:
    async def scenario(limiter: Callable[..., RateLimiter], storage: Any) -> None:
        off = limiter("signup_ip=0/1", Clock(1_000.0))
        ip = f"192.0.2.{secrets.randbelow(250)}:{secrets.token_hex(4)}"
        for _ in range(5):
            await off.hit("signup_ip", ip)
        if isinstance(off._counter, DatabaseRateCounter):
            async with storage.read() as tx:
                assert await tx.sql.scalar("SELECT COUNT(*) FROM rate_counters WHERE key = :ip", ip=ip) == 0

    run_with(scenario)


def test_account_keys_hold_a_pseudonym_never_the_email(run_with: Callable[[Scenario], None]) -> None:
    async def scenario(limiter: Callable[..., RateLimiter], _storage: Any) -> None:
        clock = Clock(1_000.0)
        one, other = limiter("signin_account=1/60", clock), limiter("signin_account=1/60", clock)
        key = one.account_key("p1", "ann@example.com", "192.0.2.7")
        assert "ann" not in key and "example" not in key
        assert key == other.account_key("p1", "ann@example.com", "192.0.2.7")
        assert key != other.account_key("p1", "bob@example.com", "192.0.2.7")
        assert key != limiter("signin_account=1/60", clock, b"another server key").account_key(
            "p1", "ann@example.com", "192.0.2.7"
        )
        # Keys too long to store as they are are stored as their digest, and still counted.
        long_key = "x" * 500 + secrets.token_hex(8)
        await one.hit("signin_account", long_key)
        with pytest.raises(RateLimited):
            await other.hit("signin_account", long_key)

    run_with(scenario)


def test_database_counts_of_finished_windows_are_pruned_and_a_lagging_clock_counts_in_the_current_one(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    upgrade(database_url)

    async def main() -> None:
        storage = open_storage(database_url, 1)
        counter = open_rate_counter(None, storage, "unused")
        clock, lagging = Clock(6_000.0), Clock(5_999.0)
        fast = RateLimiter(parse_rate_rules("signin_ip=2/60,anonymous_ip=5/3600"), counter, KEY, clock)
        slow = RateLimiter(parse_rate_rules("signin_ip=2/60,anonymous_ip=5/3600"), counter, KEY, lagging)
        try:
            await fast.hit("signin_ip", "192.0.2.1")  # window [6000, 6060)
            await slow.hit("signin_ip", "192.0.2.1")  # stamped [5940, 6000): counts in the newer window
            with pytest.raises(RateLimited):
                await fast.hit("signin_ip", "192.0.2.1")
            await fast.hit("anonymous_ip", "192.0.2.1")  # window [3600, 7200)
            clock.now = 6_061.0
            assert await fast.forget_finished() == 1
            async with storage.read() as tx:
                rows = await tx.sql.all("SELECT rule, hits FROM rate_counters")
            assert rows == [{"rule": "anonymous_ip", "hits": 1}]
        finally:
            await storage.close()

    run_async(main())


def test_redis_keys_expire_with_their_window(redis_url: str) -> None:
    from redis.asyncio import Redis

    namespace = secrets.token_hex(6)

    async def main() -> None:
        storage = open_storage("sqlite:///:memory:", 1)
        counter = open_rate_counter(redis_url, storage, namespace)
        limiter = RateLimiter(parse_rate_rules("signin_ip=5/60"), counter, KEY, Clock(6_030.0))
        client = Redis.from_url(redis_url)
        try:
            await limiter.hit("signin_ip", "192.0.2.1")
            await limiter.hit("signin_ip", "192.0.2.1")
            keys = [key async for key in client.scan_iter(f"chatgate:{namespace}:*")]
            assert keys == [f"chatgate:{namespace}:rate:signin_ip:6000:192.0.2.1".encode()]
            assert await client.get(keys[0]) == b"2"
            assert 0 < await client.ttl(keys[0]) <= 61
            assert await limiter.forget_finished() == 0
        finally:
            await client.aclose()
            await counter.close()
            await storage.close()

    run_async(main())


def test_an_unreachable_redis_fails_the_attempt_rather_than_letting_it_through() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from conftest import free_port

    async def main() -> None:
        storage = open_storage("sqlite:///:memory:", 1)
        counter = open_rate_counter(f"redis://127.0.0.1:{free_port()}/0", storage, "nobody")
        limiter = RateLimiter(parse_rate_rules("signin_ip=5/60"), counter, KEY, Clock(6_030.0))
        try:
            with pytest.raises(RedisConnectionError):
                await limiter.hit("signin_ip", "192.0.2.1")
            with pytest.raises(RedisConnectionError):
                await limiter.ping()  # and /healthz says so
        finally:
            await counter.close()
            await storage.close()

    run_async(main())
