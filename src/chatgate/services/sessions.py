"""Sessions: issue a token bound to a stored session, recognise it, end it."""

from __future__ import annotations

from datetime import datetime, timedelta

from chatgate.domain.audit import AuditAction
from chatgate.domain.conversations import Event, EventType
from chatgate.domain.ids import new_id
from chatgate.domain.models import Session, SessionKind
from chatgate.errors import NotAuthenticated, TokenRejected
from chatgate.services.context import Caller, Principal, ServiceContext, audit
from chatgate.services.ports import Transaction


class SessionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def record(
        self,
        tx: Transaction,
        kind: SessionKind,
        subject_id: str,
        project_id: str | None,
        now: datetime,
        method: str,
    ) -> Session:
        """Store a session in the caller's transaction; sign its token once that has committed (``sign``)."""
        session = self.new(kind, subject_id, project_id, now, method)
        await tx.sessions.add(session)
        return session

    def new(self, kind: SessionKind, subject_id: str, project_id: str | None, now: datetime, method: str) -> Session:
        """A session starting now, for the kind's lifetime."""
        settings = self.ctx.settings
        ttl = settings.staff_session_ttl_seconds if kind is SessionKind.STAFF else settings.session_ttl_seconds
        return Session(new_id(), kind, project_id, subject_id, now, now + timedelta(seconds=ttl), method=method)

    def sign(self, session: Session) -> str:
        """The token naming a stored session."""
        claims: dict[str, object] = {
            "sid": session.id,
            "sub": session.subject_id,
            "knd": session.kind.value,
            "iat": int(session.created_at.timestamp()),
            "exp": int(session.expires_at.timestamp()),
        }
        if session.project_id is not None:
            claims["pid"] = session.project_id
        return self.ctx.session_codec.issue(claims)

    def peek(self, token: str) -> dict[str, object] | None:
        """The claims of a well-signed, unexpired session token, without the storage check."""
        try:
            return self.ctx.session_codec.read(token, self.ctx.clock().timestamp())
        except TokenRejected:
            return None

    async def live_session(self, tx: Transaction, token: str) -> Session | None:
        claims = self.peek(token)
        if claims is None:
            return None
        session = await tx.sessions.get(str(claims.get("sid")))
        return session if self.is_live(session, claims) else None

    def is_live(self, session: Session | None, claims: dict[str, object]) -> bool:
        """The stored session exists, is neither revoked nor expired, and is the token's."""
        return (
            session is not None
            and session.revoked_at is None
            and session.expires_at > self.ctx.clock()
            and session.subject_id == claims.get("sub")
        )

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a session token; revoked or expired sessions are refused at once."""
        claims = self.peek(token)
        session = await self.ctx.sessions.get(str(claims.get("sid"))) if claims is not None else None
        if claims is None or session is None or not self.is_live(session, claims):
            raise NotAuthenticated("The session token is invalid, expired or signed out.")
        return Principal(session.kind, session.id, session.subject_id, session.project_id)

    async def logout(self, caller: Caller) -> None:
        principal = caller.principal
        if principal is None:
            raise NotAuthenticated()
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await tx.sessions.revoke(principal.session_id, now)
            # Its open sockets close (on every process) once this commits.
            await tx.events.add(
                Event(
                    EventType.SESSION_REVOKED,
                    principal.project_id,
                    {"reason": "logout"},
                    session_id=principal.session_id,
                )
            )
            await audit(
                tx,
                now,
                AuditAction.SESSION_ENDED,
                caller=caller,
                project_id=principal.project_id,
                subject_id=principal.subject_id,
            )
