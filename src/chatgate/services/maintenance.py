"""Housekeeping that keeps storage from growing without bound."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chatgate.services.context import ServiceContext
from chatgate.services.webhooks import KEEP_FINISHED

EVERY_SECONDS = 600
# How long a reconnecting device can ask for the events it missed (later it refetches over REST).
EVENT_RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class Pruned:
    sessions: int
    token_ids: int
    rate_counts: int
    events: int
    webhook_deliveries: int = 0


class MaintenanceService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def prune(self) -> Pruned:
        """Forget expired sessions, the consumed jtis of expired tokens (a replay is refused by exp),
        the rate counts of finished windows, live events past their retention and webhook deliveries
        finished long ago."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            sessions, token_ids = await tx.sessions.forget_expired(now), await tx.token_ids.forget_expired(now)
            events = await tx.events.forget_before(now - EVENT_RETENTION)
            deliveries = await tx.webhook_deliveries.forget_finished_before(now - KEEP_FINISHED)
        return Pruned(sessions, token_ids, await self.ctx.limiter.forget_finished(), events, deliveries)
