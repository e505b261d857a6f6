"""Rate-limit counts in Redis (``CHATGATE_REDIS_URL``): one key per (rule, window, key), gone when its window is.

A hit is one round trip: a Lua script increments the key and, on the first
hit, sets its expiry, as one atomic step, so a key never outlives its window
for want of an EXPIRE. Keys live under a namespace derived from the server
key, so deployments sharing one Redis never share counts.
"""

from __future__ import annotations

from redis.asyncio import Redis

_HIT = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return hits
"""


class RedisRateCounter:
    def __init__(self, url: str, namespace: str) -> None:
        # A lost Redis fails the request in seconds, not minutes.
        self._redis: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._hit = self._redis.register_script(_HIT)
        self._prefix = f"chatgate:{namespace}:rate:"

    async def hit(self, rule: str, key: str, window_start: int, window_end: int) -> int:
        # Relative to the first hit, so Redis's clock need not agree with ours: the key outlives its window.
        ttl = window_end - window_start + 1
        hits = await self._hit(keys=[f"{self._prefix}{rule}:{window_start}:{key}"], args=[ttl])
        return int(hits)

    async def forget_finished(self, now: int) -> int:
        return 0  # Redis expires them

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
