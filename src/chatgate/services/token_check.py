"""The token tester: what a sign-in with a customer token would do now, without signing anyone in.

An owner or admin sends a token and the way in it is meant for. The answer
says whether that sign-in would succeed now, and if not why (the same §6
reason the sign-in would give), whom it would sign in or whether it would
create a user. Nothing here checks a token itself: the sign-in's own checks
run (``EndUserAuthService.read_token_for``), then its own writes, in a
transaction that is always rolled back (``rehearse_login``). So the tester
creates, changes, consumes and records nothing: no user, session or seat, no
``jti`` marked used, no audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chatgate.crypto.compact import unverified_claims
from chatgate.domain.dialects import LoginClaim
from chatgate.domain.models import EndUser
from chatgate.errors import DomainError, TokenRejected
from chatgate.services.context import Caller, ServiceContext
from chatgate.services.end_user_auth import TOKEN_WAYS, EndUserAuthService
from chatgate.services.projects import require_role

METHODS = tuple(TOKEN_WAYS)

# What the sign-in would do: sign an existing user in, create one, or refuse although the token is good.
Outcome = Literal["sign_in", "create", "refuse"]


@dataclass(frozen=True)
class TokenCheck:
    method: str
    accepted: bool  # a sign-in with this token would succeed now
    message: str
    would: Outcome | None  # None: the token itself is rejected (``reason``)
    reason: str | None = None
    claims: dict[str, Any] | None = None  # the payload as decoded, verified or not
    identity: dict[str, str] | None = None  # who the verified token names
    user: EndUser | None = None  # the user it would sign in, as stored


class TokenCheckService:
    def __init__(self, ctx: ServiceContext, end_users: EndUserAuthService) -> None:
        self.ctx = ctx
        self.end_users = end_users

    async def check(self, project_id: str, token: str, method: str, caller: Caller) -> TokenCheck:
        """Owners and admins; counted against the ``signin_ip`` throttle like a sign-in."""
        async with self.ctx.storage.read() as tx:
            project = await require_role(tx, project_id, caller)
        await self.ctx.limiter.hit("signin_ip", caller.ip)
        claims = _decoded(token)
        try:
            project, claim = await self.end_users.read_token_for(project, token, method)
        except TokenRejected as rejection:
            return TokenCheck(method, False, rejection.message, None, rejection.reason, claims)
        except DomainError as refusal:  # the way in is turned off
            return TokenCheck(method, False, refusal.message, "refuse", None, claims)
        identity = _identity(claim)
        try:
            user, created = await self.end_users.rehearse_login(project, claim, method, caller)
        except TokenRejected as rejection:  # its jti was used
            return TokenCheck(method, False, rejection.message, None, rejection.reason, claims, identity)
        except DomainError as refusal:  # no seat, no such user, a conflict
            return TokenCheck(method, False, refusal.message, "refuse", None, claims, identity)
        if created:
            message = "A sign-in with this token would create a new user, who takes a seat."
            return TokenCheck(method, True, message, "create", None, claims, identity)
        async with self.ctx.storage.read() as tx:
            stored = await tx.end_users.by_id(user.id)
        message = "A sign-in with this token would sign in an existing user."
        return TokenCheck(method, True, message, "sign_in", None, claims, identity, stored)


def _decoded(token: str) -> dict[str, Any] | None:
    """The payload, if the token is well-formed enough to read; its signature is not checked here."""
    try:
        return unverified_claims(token)
    except TokenRejected:
        return None


def _identity(claim: LoginClaim) -> dict[str, str]:
    """The ``externalId`` and ``email`` the token names (a TypingMind ``id`` may also be an ``_id``)."""
    identity = {"email" if claim.lookup.by == "email" else "externalId": claim.lookup.value}
    if claim.new_user is not None:
        if claim.new_user.external_id is not None:
            identity.setdefault("externalId", claim.new_user.external_id)
        if claim.new_user.email is not None:
            identity.setdefault("email", claim.new_user.email)
    return identity
