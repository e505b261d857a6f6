"""Repositories: the only code that writes SQL. One ``Store`` per transaction.

Every "created on first sight" path is an INSERT … ON CONFLICT DO NOTHING
followed by a read, so concurrent first logins converge on one row; the seat
limit is a conditional UPDATE on a counter row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from chatgate.domain.identity import Lookup
from chatgate.domain.models import (
    ApiKey,
    AuditEvent,
    CreatedVia,
    EndUser,
    Membership,
    NewEndUser,
    Project,
    Role,
    Session,
    SessionKind,
    StaffAccount,
)
from chatgate.storage.tables import (
    api_keys,
    audit_events,
    end_users,
    memberships,
    project_audiences,
    projects,
    seat_counters,
    sessions,
    staff_accounts,
    used_token_ids,
)


class _Repo:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def _insert_if_absent(self, table: Table, values: Mapping[str, Any]) -> bool:
        """Insert unless a unique key already holds; True when this call inserted."""
        make = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        key = next(iter(table.primary_key.columns))
        # RETURNING, not rowcount: drivers disagree on rowcount for this statement.
        inserted = self.conn.execute(make(table).values(**values).on_conflict_do_nothing().returning(key))
        return inserted.first() is not None


class StaffRepo(_Repo):
    def add(self, account: StaffAccount) -> bool:
        return self._insert_if_absent(staff_accounts, _staff_values(account))

    def by_email(self, email: str) -> StaffAccount | None:
        row = self.conn.execute(select(staff_accounts).where(staff_accounts.c.email == email)).first()
        return _staff(row) if row else None

    def by_id(self, staff_id: str) -> StaffAccount | None:
        row = self.conn.execute(select(staff_accounts).where(staff_accounts.c.id == staff_id)).first()
        return _staff(row) if row else None


class ProjectRepo(_Repo):
    def add(self, project: Project, owner_id: str, now: datetime) -> None:
        self.conn.execute(
            projects.insert().values(
                id=project.id,
                name=project.name,
                settings=project.settings,
                secret_sealed=project.secret_ciphertext,
                created_at=project.created_at,
                updated_at=project.created_at,
            )
        )
        self.conn.execute(seat_counters.insert().values(project_id=project.id, used=0))
        self.add_member(project.id, owner_id, Role.OWNER, now)

    def add_member(self, project_id: str, staff_id: str, role: Role, now: datetime) -> bool:
        return self._insert_if_absent(
            memberships, {"project_id": project_id, "staff_id": staff_id, "role": role.value, "created_at": now}
        )

    def get(self, project_id: str) -> Project | None:
        row = self.conn.execute(select(projects).where(projects.c.id == project_id)).first()
        return _project(row) if row else None

    def oldest(self) -> Project | None:
        row = self.conn.execute(select(projects).order_by(projects.c.created_at, projects.c.id).limit(1)).first()
        return _project(row) if row else None

    def for_staff(self, staff_id: str) -> list[tuple[Project, Role]]:
        rows = self.conn.execute(
            select(projects, memberships.c.role)
            .join(memberships, memberships.c.project_id == projects.c.id)
            .where(memberships.c.staff_id == staff_id)
            .order_by(projects.c.created_at, projects.c.id)
        ).all()
        return [(_project(row), Role(row.role)) for row in rows]

    def membership(self, project_id: str, staff_id: str) -> Membership | None:
        row = self.conn.execute(
            select(memberships).where(memberships.c.project_id == project_id, memberships.c.staff_id == staff_id)
        ).first()
        return Membership(row.project_id, row.staff_id, Role(row.role)) if row else None

    def update(self, project_id: str, now: datetime, *, name: str | None, settings: dict[str, Any]) -> None:
        values: dict[str, Any] = {"settings": settings, "updated_at": now}
        if name is not None:
            values["name"] = name
        self.conn.execute(update(projects).where(projects.c.id == project_id).values(**values))

    def replace_audiences(self, project_id: str, audiences: Sequence[str]) -> bool:
        """Point ``audiences`` at this project; False when another project holds one of them."""
        self.conn.execute(delete(project_audiences).where(project_audiences.c.project_id == project_id))
        return all(
            self._insert_if_absent(project_audiences, {"audience": aud, "project_id": project_id}) for aud in audiences
        )

    def for_audience(self, audience: str) -> str | None:
        return self.conn.execute(
            select(project_audiences.c.project_id).where(project_audiences.c.audience == audience)
        ).scalar()

    def set_secret(self, project_id: str, sealed: bytes, now: datetime) -> None:
        self.conn.execute(
            update(projects).where(projects.c.id == project_id).values(secret_sealed=sealed, updated_at=now)
        )

    def take_seat(self, project_id: str, limit: int | None) -> bool:
        """Count one more identified user, unless that would pass ``limit``."""
        condition = seat_counters.c.project_id == project_id
        if limit is not None:
            condition = and_(condition, seat_counters.c.used < limit)
        result = self.conn.execute(update(seat_counters).where(condition).values(used=seat_counters.c.used + 1))
        return result.rowcount == 1

    def seats_used(self, project_id: str) -> int:
        used = self.conn.execute(select(seat_counters.c.used).where(seat_counters.c.project_id == project_id)).scalar()
        return int(used or 0)


class EndUserRepo(_Repo):
    def add_if_absent(self, user_id: str, project_id: str, new: NewEndUser, now: datetime) -> bool:
        return self._insert_if_absent(
            end_users,
            {
                "id": user_id,
                "project_id": project_id,
                "external_id": new.external_id,
                "email": new.email,
                "firstname": new.firstname,
                "lastname": new.lastname,
                "anonymous": new.anonymous,
                "created_via": new.created_via.value,
                "metadata": new.metadata,
                "password_hash": new.password_hash,
                "created_at": now,
                "last_seen_at": now,
            },
        )

    def find(self, project_id: str, lookup: Lookup) -> EndUser | None:
        c = end_users.c
        if lookup.by == "external_id":
            condition = c.external_id == lookup.value
        elif lookup.by == "email":
            condition = c.email == lookup.value
        else:
            # TypingMind "id": the customer's id first, then Chatgate's own.
            found = self.find(project_id, Lookup("external_id", lookup.value))
            if found is not None:
                return found
            condition = c.id == lookup.value
        row = self.conn.execute(select(end_users).where(c.project_id == project_id, condition)).first()
        return _end_user(row) if row else None

    def get(self, project_id: str, user_id: str) -> EndUser | None:
        return self.find(project_id, Lookup("external_id_or_id", user_id))

    def by_id(self, user_id: str) -> EndUser | None:
        row = self.conn.execute(select(end_users).where(end_users.c.id == user_id)).first()
        return _end_user(row) if row else None

    def seen(self, user_id: str, now: datetime, changes: Mapping[str, Any]) -> None:
        self.conn.execute(update(end_users).where(end_users.c.id == user_id).values(last_seen_at=now, **changes))

    def email_owner(self, project_id: str, email: str) -> str | None:
        return self.conn.execute(
            select(end_users.c.id).where(end_users.c.project_id == project_id, end_users.c.email == email)
        ).scalar()

    def mark_merged(self, user_id: str, into_id: str) -> None:
        self.conn.execute(update(end_users).where(end_users.c.id == user_id).values(merged_into=into_id))

    def page(
        self,
        project_id: str,
        *,
        created_via: CreatedVia | None,
        query: str | None,
        limit: int,
        after: str | None,
    ) -> list[EndUser]:
        c = end_users.c
        stmt = select(end_users).where(c.project_id == project_id, c.merged_into.is_(None))
        if created_via is not None:
            stmt = stmt.where(c.created_via == created_via.value)
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                or_(
                    func.lower(c.email).like(pattern, escape="\\"),
                    func.lower(c.external_id).like(pattern, escape="\\"),
                    func.lower(c.firstname).like(pattern, escape="\\"),
                    func.lower(c.lastname).like(pattern, escape="\\"),
                )
            )
        if after:
            stmt = stmt.where(c.id > after)
        rows = self.conn.execute(stmt.order_by(c.id).limit(limit)).all()
        return [_end_user(row) for row in rows]


class SessionRepo(_Repo):
    def add(self, session: Session) -> None:
        self.conn.execute(
            sessions.insert().values(
                id=session.id,
                kind=session.kind.value,
                project_id=session.project_id,
                subject_id=session.subject_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    def get(self, session_id: str) -> Session | None:
        row = self.conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            return None
        return Session(
            row.id,
            SessionKind(row.kind),
            row.project_id,
            row.subject_id,
            row.created_at,
            row.expires_at,
            row.revoked_at,
        )

    def revoke(self, session_id: str, now: datetime) -> None:
        self.conn.execute(
            update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)).values(revoked_at=now)
        )

    def revoke_subject(self, subject_id: str, now: datetime) -> int:
        result = self.conn.execute(
            update(sessions)
            .where(sessions.c.subject_id == subject_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount


class ApiKeyRepo(_Repo):
    def add(self, key: ApiKey) -> None:
        self.conn.execute(
            api_keys.insert().values(
                id=key.id,
                project_id=key.project_id,
                name=key.name,
                roles=list(key.roles),
                prefix=key.prefix,
                key_hash=key.key_hash,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
        )

    def by_prefix(self, prefix: str) -> ApiKey | None:
        row = self.conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
        return _api_key(row) if row else None

    def for_project(self, project_id: str) -> list[ApiKey]:
        rows = self.conn.execute(
            select(api_keys).where(api_keys.c.project_id == project_id).order_by(api_keys.c.id)
        ).all()
        return [_api_key(row) for row in rows]

    def revoke(self, project_id: str, key_id: str, now: datetime) -> bool:
        result = self.conn.execute(
            update(api_keys)
            .where(api_keys.c.project_id == project_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount == 1

    def used(self, key_id: str, now: datetime) -> None:
        self.conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


class TokenIdRepo(_Repo):
    def consume(self, project_id: str, jti: str, expires_at: datetime | None) -> bool:
        """Mark ``jti`` used; False when it already was."""
        return self._insert_if_absent(used_token_ids, {"project_id": project_id, "jti": jti, "expires_at": expires_at})

    def forget_expired(self, now: datetime) -> int:
        result = self.conn.execute(delete(used_token_ids).where(used_token_ids.c.expires_at < now))
        return result.rowcount


class AuditRepo(_Repo):
    def add(self, event: AuditEvent) -> None:
        self.conn.execute(
            audit_events.insert().values(
                id=event.id,
                at=event.at,
                action=event.action,
                project_id=event.project_id,
                actor_type=event.actor_type,
                actor_id=event.actor_id,
                subject_id=event.subject_id,
                ip=event.ip,
                reason=event.reason,
                details=event.details,
            )
        )

    def page(self, project_id: str, *, action: str | None, limit: int, before: str | None) -> list[AuditEvent]:
        c = audit_events.c
        stmt = select(audit_events).where(c.project_id == project_id)
        if action:
            stmt = stmt.where(c.action == action)
        if before:
            stmt = stmt.where(c.id < before)
        rows = self.conn.execute(stmt.order_by(c.id.desc()).limit(limit)).all()
        return [
            AuditEvent(
                r.id, r.at, r.action, r.project_id, r.actor_type, r.actor_id, r.subject_id, r.ip, r.reason, r.details
            )
            for r in rows
        ]


class Store:
    """The repositories of one transaction."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.staff = StaffRepo(conn, dialect)
        self.projects = ProjectRepo(conn, dialect)
        self.end_users = EndUserRepo(conn, dialect)
        self.sessions = SessionRepo(conn, dialect)
        self.api_keys = ApiKeyRepo(conn, dialect)
        self.token_ids = TokenIdRepo(conn, dialect)
        self.audit = AuditRepo(conn, dialect)


def _staff_values(a: StaffAccount) -> dict[str, Any]:
    return {
        "id": a.id,
        "email": a.email,
        "firstname": a.firstname,
        "lastname": a.lastname,
        "email_verified": a.email_verified,
        "password_hash": a.password_hash,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def _staff(r: Row[Any]) -> StaffAccount:
    return StaffAccount(
        r.id, r.email, r.firstname, r.lastname, r.email_verified, r.password_hash, r.created_at, r.updated_at
    )


def _project(r: Row[Any]) -> Project:
    return Project(r.id, r.name, r.created_at, dict(r.settings), r.secret_sealed)


def _end_user(r: Row[Any]) -> EndUser:
    return EndUser(
        id=r.id,
        project_id=r.project_id,
        external_id=r.external_id,
        email=r.email,
        firstname=r.firstname,
        lastname=r.lastname,
        anonymous=r.anonymous,
        created_via=CreatedVia(r.created_via),
        metadata=dict(r._mapping["metadata"]),
        created_at=r.created_at,
        last_seen_at=r.last_seen_at,
        password_hash=r.password_hash,
    )


def _api_key(r: Row[Any]) -> ApiKey:
    return ApiKey(
        r.id,
        r.project_id,
        r.name,
        tuple(r.roles),
        r.prefix,
        r.key_hash,
        r.created_at,
        r.expires_at,
        r.revoked_at,
        r.last_used_at,
    )
