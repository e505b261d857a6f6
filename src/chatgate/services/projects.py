"""Projects: creation, membership and settings (contract §2)."""

from __future__ import annotations

from typing import Any

from chatgate.domain import project_settings
from chatgate.domain.audit import AuditAction
from chatgate.domain.conversations import Event, EventType
from chatgate.domain.ids import looks_like_id, new_id
from chatgate.domain.models import Member, Membership, Project, Role, SessionKind
from chatgate.errors import (
    Forbidden,
    InsufficientRole,
    LastOwner,
    MemberNotFound,
    NotAuthenticated,
    ProjectNotFound,
    UserNotFound,
)
from chatgate.services.context import Caller, ServiceContext, audit
from chatgate.services.ports import Transaction

MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
EVERY_ROLE = frozenset(Role)


def staff_id_of(caller: Caller) -> str:
    principal = caller.principal
    if principal is None:
        raise NotAuthenticated()
    if principal.kind is not SessionKind.STAFF:
        raise Forbidden("This needs a staff session, not an end-user session.")
    return principal.subject_id


def project_changed(project_id: str) -> Event:
    """Every process forgets its copy of the project once the change commits."""
    return Event(EventType.PROJECT_CHANGED, project_id, {})


async def require_role(tx: Transaction, project_id: str, caller: Caller, roles: frozenset[Role] = MANAGERS) -> Project:
    """The project, if the calling staff member holds one of ``roles`` in it.

    Projects the caller is not a member of answer 404, so ids cannot be probed.
    """
    staff_id = staff_id_of(caller)
    project = await tx.projects.get(project_id) if looks_like_id(project_id) else None
    membership = await tx.projects.membership(project_id, staff_id) if project else None
    if project is None or membership is None:
        raise ProjectNotFound()
    if membership.role not in roles:
        raise InsufficientRole()
    return project


async def members_take_turns(tx: Transaction, project_id: str, caller: Caller) -> None:
    """Changes to a project's members wait for one another: the owners a change counts are the owners there are.

    Only a staff session waits (others are refused first); an id that cannot be
    a project's waits for nothing, and require_role then says there is no such project.
    """
    staff_id_of(caller)
    if looks_like_id(project_id):
        await tx.projects.lock_members(project_id)


class ProjectService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def create(self, name: str, caller: Caller) -> tuple[Project, Role]:
        staff_id = staff_id_of(caller)
        now = self.ctx.clock()
        project = Project(new_id(), name, now, project_settings.default_settings())
        async with self.ctx.storage.write() as tx:
            await tx.projects.add(project, staff_id, now)
            await audit(tx, now, AuditAction.PROJECT_CREATED, caller=caller, project_id=project.id, name=name)
        return project, Role.OWNER

    async def list_mine(self, caller: Caller) -> list[tuple[Project, Role]]:
        staff_id = staff_id_of(caller)
        async with self.ctx.storage.read() as tx:
            return await tx.projects.for_staff(staff_id)

    async def allowed_origins(self, project_id: str) -> list[str]:
        """The sites that may frame the project's chat and call its API from a browser (public knowledge)."""
        project = await self.ctx.projects.get(project_id) if looks_like_id(project_id) else None
        return project.effective_settings["allowed_origins"] if project is not None else []

    async def get(self, project_id: str, caller: Caller) -> tuple[Project, Role]:
        async with self.ctx.storage.read() as tx:
            project = await require_role(tx, project_id, caller)
            membership = await tx.projects.membership(project_id, staff_id_of(caller))
        assert membership is not None
        return project, membership.role

    async def update(self, project_id: str, caller: Caller, *, name: str | None, settings: Any) -> tuple[Project, Role]:
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            project = await require_role(tx, project_id, caller)
            new_settings = (
                project_settings.apply_change(project.settings, settings)
                if settings is not None
                else project_settings.with_defaults(project.settings)
            )
            if new_settings["accepted_audiences"] != project.effective_settings["accepted_audiences"]:
                await tx.projects.replace_audiences(project_id, new_settings["accepted_audiences"])
            await tx.projects.update(project_id, now, name=name, settings=new_settings)
            await tx.events.add(project_changed(project_id))
            changed = sorted(settings.keys()) if isinstance(settings, dict) else []
            await audit(
                tx,
                now,
                AuditAction.PROJECT_SETTINGS_CHANGED,
                caller=caller,
                project_id=project_id,
                changed=changed + (["name"] if name is not None else []),
            )
            membership = await tx.projects.membership(project_id, staff_id_of(caller))
            updated = await tx.projects.get(project_id)
        assert updated is not None and membership is not None
        return updated, membership.role

    async def add_member(self, project_id: str, email: str, role: Role, caller: Caller) -> Membership:
        """Give an existing staff account a role in the project, or change it (owners only).

        The answer is the membership as stored. The last owner cannot step down:
        a project always has someone who can manage its members.
        """
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await members_take_turns(tx, project_id, caller)
            await require_role(tx, project_id, caller, frozenset({Role.OWNER}))
            account = await tx.staff.by_email(email)
            if account is None:
                raise UserNotFound("No staff account has this email; they must sign up first.")
            if not await tx.projects.add_member(project_id, account.id, role, now):
                current = await tx.projects.membership(project_id, account.id)
                stepping_down = current is not None and current.role is Role.OWNER and role is not Role.OWNER
                if stepping_down and await tx.projects.owner_count(project_id) <= 1:
                    raise LastOwner()
                await tx.projects.set_role(project_id, account.id, role)
            stored = await tx.projects.membership(project_id, account.id)
            await audit(
                tx,
                now,
                AuditAction.PROJECT_MEMBER_ADDED,
                caller=caller,
                project_id=project_id,
                subject_id=account.id,
                role=role.value,
            )
        assert stored is not None
        return stored

    async def members(self, project_id: str, caller: Caller) -> list[Member]:
        """Every member of the project, in the order they were added (any member may read it)."""
        async with self.ctx.storage.read() as tx:
            await require_role(tx, project_id, caller, EVERY_ROLE)
            return await tx.projects.members(project_id)

    async def remove_member(self, project_id: str, staff_id: str, caller: Caller) -> None:
        """Take a staff account out of the project (owners; any member may leave).

        The last owner can neither be removed nor leave; as changes to the
        members take turns, two owners removed at once cannot leave the project
        without one. A removed member's next request to the project is refused
        at once: every request reads the caller's role from the database, and
        their open sockets on the project close (4404) on every process.
        """
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            await members_take_turns(tx, project_id, caller)
            leaving = staff_id == staff_id_of(caller)
            await require_role(tx, project_id, caller, EVERY_ROLE if leaving else frozenset({Role.OWNER}))
            member = await tx.projects.membership(project_id, staff_id) if looks_like_id(staff_id) else None
            if member is None:
                raise MemberNotFound()
            if member.role is Role.OWNER and await tx.projects.owner_count(project_id) <= 1:
                raise LastOwner()
            await tx.projects.remove_member(project_id, staff_id)
            await tx.events.add(Event(EventType.MEMBER_REMOVED, project_id, {"staff_id": staff_id}))
            await audit(
                tx,
                now,
                AuditAction.PROJECT_MEMBER_REMOVED,
                caller=caller,
                project_id=project_id,
                subject_id=staff_id,
                role=member.role.value,
            )
