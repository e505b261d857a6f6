"""Housekeeping that keeps storage from growing without bound."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.services.context import ServiceContext

EVERY_SECONDS = 600


@dataclass(frozen=True)
class Pruned:
    sessions: int
    token_ids: int
    rate_counts: int


class MaintenanceService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def prune(self) -> Pruned:
        """Forget expired sessions, the consumed jtis of expired tokens (a replay is refused by exp)
        and the rate counts of finished windows."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            sessions, token_ids = await tx.sessions.forget_expired(now), await tx.token_ids.forget_expired(now)
        return Pruned(sessions, token_ids, await self.ctx.limiter.forget_finished())
