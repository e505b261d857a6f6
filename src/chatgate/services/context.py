"""What every service needs, built once by ``app.create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chatgate.crypto.passwords import PasswordHasherPool
from chatgate.crypto.secrets import SecretBox
from chatgate.crypto.tokens import SessionTokenCodec
from chatgate.domain.ids import new_id
from chatgate.domain.models import AuditEvent, SessionKind
from chatgate.services.caches import ProjectCache, SessionCache, SessionUserCache
from chatgate.services.live import LiveHub
from chatgate.services.ports import Storage, Transaction, WebhookSender
from chatgate.services.rate_limits import RateLimiter
from chatgate.services.sign_in_metrics import NoSignInMetrics, SignInMetrics
from chatgate.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    storage: Storage
    passwords: PasswordHasherPool
    session_codec: SessionTokenCodec
    secret_box: SecretBox
    limiter: RateLimiter
    live: LiveHub
    projects: ProjectCache
    sessions: SessionCache
    session_users: SessionUserCache
    webhook_sender: WebhookSender
    clock: Callable[[], datetime] = utc_now
    sign_ins: SignInMetrics = field(default_factory=NoSignInMetrics)


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a live session (or, for staff where the server allows it, HTTP Basic
    credentials: then ``session_id`` is empty, as no session is stored)."""

    kind: SessionKind
    session_id: str
    subject_id: str
    project_id: str | None


@dataclass(frozen=True)
class Caller:
    """Where a request came from, for throttles and the audit log."""

    ip: str
    principal: Principal | None = None


async def audit(tx: Transaction, now: datetime, action: str, **fields: Any) -> None:
    """Write one audit row (``audit_event``) in the caller's transaction. Never pass tokens or secrets."""
    await tx.audit.add(audit_event(now, action, **fields))


def audit_event(
    now: datetime,
    action: str,
    *,
    caller: Caller | None = None,
    project_id: str | None = None,
    subject_id: str | None = None,
    reason: str | None = None,
    actor: tuple[str, str] | None = None,
    **details: Any,
) -> AuditEvent:
    """One audit row; the actor, unless given, is the caller's principal."""
    if actor is None and caller is not None and caller.principal is not None:
        actor = (caller.principal.kind.value, caller.principal.subject_id)
    return AuditEvent(
        id=new_id(),
        at=now,
        action=action,
        project_id=project_id,
        actor_type=actor[0] if actor else None,
        actor_id=actor[1] if actor else None,
        subject_id=subject_id,
        ip=caller.ip if caller else None,
        reason=reason,
        details=details,
    )
