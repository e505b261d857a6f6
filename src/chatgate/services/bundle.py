"""All services, wired from one context."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.services.context import ServiceContext
from chatgate.services.conversations import ConversationService
from chatgate.services.directory import DirectoryService
from chatgate.services.end_user_auth import EndUserAuthService
from chatgate.services.health import HealthService
from chatgate.services.keys import KeyService
from chatgate.services.maintenance import MaintenanceService
from chatgate.services.projects import ProjectService
from chatgate.services.sessions import SessionService
from chatgate.services.staff import StaffService
from chatgate.services.token_check import TokenCheckService
from chatgate.services.webhooks import WebhookDispatcher, WebhookService


@dataclass(frozen=True)
class Services:
    ctx: ServiceContext
    sessions: SessionService
    staff: StaffService
    projects: ProjectService
    keys: KeyService
    end_users: EndUserAuthService
    directory: DirectoryService
    maintenance: MaintenanceService
    health: HealthService
    conversations: ConversationService
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    token_check: TokenCheckService

    @classmethod
    def build(cls, ctx: ServiceContext) -> Services:
        sessions = SessionService(ctx)
        keys = KeyService(ctx)
        end_users = EndUserAuthService(ctx, sessions, keys)
        return cls(
            ctx=ctx,
            sessions=sessions,
            staff=StaffService(ctx, sessions),
            projects=ProjectService(ctx),
            keys=keys,
            end_users=end_users,
            directory=DirectoryService(ctx),
            maintenance=MaintenanceService(ctx),
            health=HealthService(ctx),
            conversations=ConversationService(ctx),
            webhooks=WebhookService(ctx),
            webhook_dispatcher=WebhookDispatcher(ctx, ctx.webhook_sender),
            token_check=TokenCheckService(ctx, end_users),
        )
