"""What staff can see of a project: its end users, their sessions, seats and audit log; and signing a user out."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.domain.audit import AuditAction
from chatgate.domain.ids import looks_like_id
from chatgate.domain.models import ApiKey, AuditEvent, CreatedVia, EndUser, Project, Role, Session
from chatgate.errors import Forbidden, ProjectNotFound, UserNotFound
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.end_user_auth import sessions_ended
from chatgate.services.keys import USER_READER_ROLE, live_api_key, note_key_use
from chatgate.services.ports import Transaction
from chatgate.services.projects import require_role

MAX_PAGE = 200
# The newest sessions of a user that are listed; older live ones still end with a sign-out everywhere.
MAX_SESSIONS = 200


@dataclass(frozen=True)
class UserPage:
    users: list[EndUser]
    seats_used: int
    seat_limit: int | None
    next_cursor: str | None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


class DirectoryService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def list_users(
        self,
        project_id: str,
        caller: Caller,
        *,
        created_via: CreatedVia | None,
        query: str | None,
        limit: int,
        cursor: str | None,
        api_key: str | None = None,
    ) -> UserPage:
        """Owners and admins, or the project's backend with an ``org.user`` API key (as Kustomer's REST API
        is used); every user, visitors included, oldest first."""
        limit = max(1, min(limit, MAX_PAGE))
        after = cursor if cursor and looks_like_id(cursor) else None
        async with self.ctx.storage.read() as tx:
            project, key = await self._reader_project(tx, project_id, caller, api_key)
            # One extra row tells whether another page follows.
            users = await tx.end_users.page(
                project_id, created_via=created_via, query=query, limit=limit + 1, after=after
            )
            used = await tx.projects.seats_used(project_id)
        more = len(users) > limit
        users = users[:limit]
        await note_key_use(self.ctx, key)
        return UserPage(users, used, project.effective_settings["seat_limit"], users[-1].id if more and users else None)

    async def get_user(self, project_id: str, user_ref: str, caller: Caller, api_key: str | None = None) -> EndUser:
        """A user by Chatgate ``_id`` or by the customer's ``externalId``; readers as for ``list_users``."""
        async with self.ctx.storage.read() as tx:
            _, key = await self._reader_project(tx, project_id, caller, api_key)
            user = await _user(tx, project_id, user_ref)
        await note_key_use(self.ctx, key)
        return user

    async def _reader_project(
        self, tx: Transaction, project_id: str, caller: Caller, api_key: str | None
    ) -> tuple[Project, ApiKey | None]:
        """The project, if the caller may read its users: a manager's session, or an API key of the project
        with ``org.user`` (401 unknown, revoked or expired key; 404 another project's key; 403 no org.user);
        and the key, if one was used."""
        if api_key is None:
            return await require_role(tx, project_id, caller), None
        key = await live_api_key(tx, api_key, self.ctx.clock())
        project = await tx.projects.get(project_id) if key.project_id == project_id else None
        if project is None:
            raise ProjectNotFound()
        if USER_READER_ROLE not in key.roles:
            raise Forbidden(f"Reading users takes an API key with the {USER_READER_ROLE} role; this one has not.")
        return project, key

    async def user_sessions(self, project_id: str, user_ref: str, caller: Caller) -> list[Session]:
        """The user's sessions that are neither signed out nor expired, newest first (MAX_SESSIONS at most)."""
        async with self.ctx.storage.read() as tx:
            await require_role(tx, project_id, caller)
            user = await _user(tx, project_id, user_ref)
            return await tx.sessions.live_for_subject(user.id, self.ctx.clock(), MAX_SESSIONS)

    async def sign_out_everywhere(self, project_id: str, user_ref: str, caller: Caller) -> int:
        """End every live session of the user at once; how many there were.

        Their tokens are refused from the next request on, by every process:
        the ``session.revoked`` event this commits makes each process forget its
        copies of the sessions, and closes the user's sockets (as a logout does).
        """
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await require_role(tx, project_id, caller)
            user = await _user(tx, project_id, user_ref)
            revoked = await tx.sessions.revoke_subject(user.id, now)
            if revoked:
                await tx.events.add(sessions_ended(project_id, user.id, "signed_out_everywhere"))
            await audit(
                tx,
                now,
                AuditAction.USER_SIGNED_OUT_EVERYWHERE,
                caller=caller,
                project_id=project_id,
                subject_id=user.id,
                sessions=revoked,
            )
        return revoked

    async def audit_log(
        self, project_id: str, caller: Caller, *, action: str | None, limit: int, cursor: str | None
    ) -> AuditPage:
        """Newest first. Owners only: it shows who did what to the project's keys."""
        limit = max(1, min(limit, MAX_PAGE))
        before = cursor if cursor and looks_like_id(cursor) else None
        async with self.ctx.storage.read() as tx:
            await require_role(tx, project_id, caller, frozenset({Role.OWNER}))
            events = await tx.audit.page(project_id, action=action, limit=limit + 1, before=before)
        more = len(events) > limit
        events = events[:limit]
        return AuditPage(events, events[-1].id if more and events else None)


async def _user(tx: Transaction, project_id: str, user_ref: str) -> EndUser:
    """A user of the project by ``externalId``, else by ``_id`` (404 ``user_not_found``)."""
    user = await tx.end_users.get(project_id, user_ref)
    if user is None:
        raise UserNotFound()
    return user
