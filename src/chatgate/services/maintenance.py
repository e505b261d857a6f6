"""Housekeeping that keeps storage from growing without bound."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.services.context import ServiceContext
from chatgate.services.webhooks import KEEP_FINISHED

EVERY_SECONDS = 600


@dataclass(frozen=True)
class Pruned:
    sessions: int
    token_ids: int
    rate_counts: int
    webhook_deliveries: int = 0


class MaintenanceService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def prune(self) -> Pruned:
        """Forget expired sessions, the consumed jtis of expired tokens (a replay is refused by exp),
        the rate counts of finished windows and webhook deliveries finished long ago."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            sessions, token_ids = await tx.sessions.forget_expired(now), await tx.token_ids.forget_expired(now)
            deliveries = await tx.webhook_deliveries.forget_finished_before(now - KEEP_FINISHED)
        return Pruned(sessions, token_ids, await self.ctx.limiter.forget_finished(), deliveries)
