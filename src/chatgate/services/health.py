"""Can this server serve? It can while its database answers, and it must say so quickly either way.

A load balancer asks every few seconds; an answer that waits on a database
that is gone would hold its check until the balancer's own timeout. The ping
is bounded instead, and a database that has not answered in time counts as
unreachable.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from chatgate.errors import StorageUnavailable
from chatgate.services.context import ServiceContext

PING_TIMEOUT_SECONDS = 2.0
DATABASE_UNREACHABLE = "database unreachable"
RATE_COUNTS_UNREACHABLE = "rate-limit store unreachable"

log = logging.getLogger("chatgate")


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str | None = None


class HealthService:
    def __init__(self, ctx: ServiceContext, ping_timeout_seconds: float = PING_TIMEOUT_SECONDS) -> None:
        self.ctx = ctx
        self.ping_timeout_seconds = ping_timeout_seconds
        self._database_was_reachable = True

    async def check(self) -> Health:
        try:
            async with asyncio.timeout(self.ping_timeout_seconds):
                await self.ctx.storage.ping()
        except Exception as exc:  # any failure to answer means the same to a load balancer
            # Logged when it changes, not on every check of every balancer.
            if self._database_was_reachable:
                log.warning("database unreachable: %s", _why(exc))
            self._database_was_reachable = False
            return Health(False, DATABASE_UNREACHABLE)
        if not self._database_was_reachable:
            log.warning("database reachable again")
        self._database_was_reachable = True
        try:
            async with asyncio.timeout(self.ping_timeout_seconds):
                await self.ctx.limiter.ping()
        except Exception:  # Redis (CHATGATE_REDIS_URL) away: sign-ins cannot be counted, so not served
            return Health(False, RATE_COUNTS_UNREACHABLE)
        return Health(True)


def _why(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the ping timeout"
    if isinstance(exc, StorageUnavailable):
        return exc.reason
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
