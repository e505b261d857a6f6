"""Housekeeping that keeps storage from growing without bound."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chatgate.services.context import ServiceContext

EVERY_SECONDS = 600
# How long a reconnecting device can ask for the events it missed (later it refetches over REST).
EVENT_RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class Pruned:
    sessions: int
    token_ids: int
    rate_counts: int
    events: int


class MaintenanceService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def prune(self) -> Pruned:
        """Forget expired sessions, the consumed jtis of expired tokens (a replay is refused by exp),
        the rate counts of finished windows and live events past their retention."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            sessions, token_ids = await tx.sessions.forget_expired(now), await tx.token_ids.forget_expired(now)
            events = await tx.events.forget_before(now - EVENT_RETENTION)
        return Pruned(sessions, token_ids, await self.ctx.limiter.forget_finished(), events)
