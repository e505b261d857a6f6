"""Domain objects to the contract's JSON shapes. Never a password hash, never a stored key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from chatgate.domain.conversations import iso as iso_utc
from chatgate.domain.models import ApiKey, AuditEvent, EndUser, Member, Project, Role, Session, StaffAccount
from chatgate.domain.webhooks import Delivery, DeliveryStatus, Webhook, user_view
from chatgate.services.token_check import TokenCheck


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds: ``2026-11-21T08:10:00.123Z``."""
    return None if moment is None else iso_utc(moment)


def staff(account: StaffAccount, *, with_dates: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": account.id,
        "email": account.email,
        "firstname": account.firstname,
        "lastname": account.lastname,
        "emailverified": account.email_verified,
    }
    if with_dates:
        body["createdAt"] = iso(account.created_at)
        body["updatedAt"] = iso(account.updated_at)
    return body


def staff_me(account: StaffAccount) -> dict[str, Any]:
    return {"_id": account.id, "email": account.email, "firstname": account.firstname, "lastname": account.lastname}


def member(m: Member) -> dict[str, Any]:
    return {
        "staff_id": m.account.id,
        "email": m.account.email,
        "firstname": m.account.firstname,
        "lastname": m.account.lastname,
        "role": m.role.value,
        "added_at": iso(m.added_at),
    }


def project(p: Project, role: Role) -> dict[str, Any]:
    return {
        "_id": p.id,
        "id": p.id,
        "name": p.name,
        "createdAt": iso(p.created_at),
        "settings": p.effective_settings,
        "role": role.value,
        "hasSigningSecret": p.secret_ciphertext is not None,
    }


def api_key(k: ApiKey, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": k.id,
        "name": k.name,
        "roles": list(k.roles),
        "expiresAt": iso(k.expires_at),
        "createdAt": iso(k.created_at),
        "lastUsedAt": iso(k.last_used_at),
        "revoked": k.revoked_at is not None,
    }
    if secret is not None:
        body["key"] = secret
    return body


def end_user(u: EndUser) -> dict[str, Any]:
    return user_view(u)


def end_user_with_claims(u: EndUser) -> dict[str, Any]:
    """The end user with its ``metadata`` also spread at the top level, as Tiledesk places a token's custom
    claims; a claim never replaces one of Chatgate's own fields."""
    view = user_view(u)
    return {**view, **{name: value for name, value in u.metadata.items() if name not in view}}


def session(s: Session) -> dict[str, Any]:
    # Sessions record their kind, not which sign-in made them: that is what ``method`` can say.
    # Sessions stored before the way in was kept say only what kind they are.
    method = s.method or s.kind.value
    return {"id": s.id, "method": method, "created_at": iso(s.created_at), "expires_at": iso(s.expires_at)}


def token_check(c: TokenCheck) -> dict[str, Any]:
    return {
        "accepted": c.accepted,
        "method": c.method,
        "reason": c.reason,
        "message": c.message,
        "claims": c.claims,
        "identity": c.identity,
        "user": end_user(c.user) if c.user is not None else None,
        "would": c.would,
    }


def audit_event(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "action": e.action,
        "actorType": e.actor_type,
        "actorId": e.actor_id,
        "subjectId": e.subject_id,
        "ip": e.ip,
        "reason": e.reason,
        "details": e.details,
    }


def webhook(w: Webhook, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": w.id,
        "url": w.url,
        "events": [e.value for e in w.events],
        "createdAt": iso(w.created_at),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhookId": d.webhook_id,
        "type": d.event.value,
        "status": d.status.value,
        "attempts": d.attempts,
        "createdAt": iso(d.created_at),
        "lastAttemptAt": iso(d.last_attempt_at),
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "nextAttemptAt": iso(d.next_attempt_at) if d.status is DeliveryStatus.PENDING else None,
        "deliveredAt": iso(d.delivered_at),
        "data": orjson.loads(d.data_json),
    }


def session_token(token: str) -> str:
    return f"JWT {token}"
