"""Repositories: the only code that writes SQL, for both adapters. One ``Store`` per transaction.

Every "created on first sight" path is an INSERT … ON CONFLICT DO NOTHING
followed by a read, so concurrent first logins converge on one row; the seat
limit is a conditional UPDATE on a counter row.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from chatgate.domain.conversations import Event
from chatgate.domain.identity import Lookup
from chatgate.domain.login_effects import (
    LAST_SEEN_RESOLUTION,
    CreateAtOnce,
    FoundUser,
    SignInAtOnce,
    Unchanged,
    seen_is_due,
)
from chatgate.domain.models import (
    ApiKey,
    AuditEvent,
    CreatedVia,
    EndUser,
    Member,
    Membership,
    NewEndUser,
    Project,
    Role,
    Session,
    SessionKind,
    StaffAccount,
)
from chatgate.storage.conversation_repos import ConversationRepo, EventRepo, MessageRepo
from chatgate.storage.sql import Sql
from chatgate.storage.statement_batches import Columns, input_columns, input_type
from chatgate.storage.webhook_repos import WebhookDeliveryRepo, WebhookRepo, has_webhooks


class _Repo:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    async def _insert_if_absent(self, table: str, key: str, values: Mapping[str, Any]) -> bool:
        """Insert unless a unique key already holds; True when this call inserted."""
        columns = ", ".join(values)
        params = ", ".join(f":{name}" for name in values)
        # RETURNING, not rowcount: drivers disagree on rowcount for this statement.
        inserted = await self.sql.one(
            f"INSERT INTO {table} ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING RETURNING {key}",  # noqa: S608
            **values,
        )
        return inserted is not None


class StaffRepo(_Repo):
    async def add(self, a: StaffAccount) -> bool:
        return await self._insert_if_absent(
            "staff_accounts",
            "id",
            {
                "id": a.id,
                "email": a.email,
                "firstname": a.firstname,
                "lastname": a.lastname,
                "email_verified": a.email_verified,
                "password_hash": a.password_hash,
                "created_at": a.created_at,
                "updated_at": a.updated_at,
            },
        )

    async def by_email(self, email: str) -> StaffAccount | None:
        return self.from_row(await self.sql.one("SELECT * FROM staff_accounts WHERE email = :email", email=email))

    async def by_id(self, staff_id: str) -> StaffAccount | None:
        return self.from_row(await self.sql.one("SELECT * FROM staff_accounts WHERE id = :id", id=staff_id))

    def from_row(self, r: dict[str, Any] | None) -> StaffAccount | None:
        if r is None:
            return None
        when = self.sql.when
        return StaffAccount(
            r["id"],
            r["email"],
            r["firstname"],
            r["lastname"],
            bool(r["email_verified"]),
            r["password_hash"],
            when(r["created_at"]),  # type: ignore[arg-type]
            when(r["updated_at"]),  # type: ignore[arg-type]
        )


class ProjectRepo(_Repo):
    async def add(self, project: Project, owner_id: str, now: datetime) -> None:
        await self.sql.run(
            "INSERT INTO projects (id, name, settings, secret_sealed, created_at, updated_at)"
            " VALUES (:id, :name, :settings, :sealed, :now, :now)",
            id=project.id,
            name=project.name,
            settings=project.settings,
            sealed=project.secret_ciphertext,
            now=project.created_at,
        )
        await self.sql.run(_NEW_SEAT_COUNTERS, id=project.id)
        await self.add_member(project.id, owner_id, Role.OWNER, now)

    async def add_member(self, project_id: str, staff_id: str, role: Role, now: datetime) -> bool:
        return await self._insert_if_absent(
            "memberships",
            "project_id",
            {"project_id": project_id, "staff_id": staff_id, "role": role.value, "created_at": now},
        )

    async def set_role(self, project_id: str, staff_id: str, role: Role) -> None:
        await self.sql.run(
            "UPDATE memberships SET role = :role WHERE project_id = :p AND staff_id = :s",
            role=role.value,
            p=project_id,
            s=staff_id,
        )

    async def lock_members(self, project_id: str) -> None:
        """PostgreSQL: the project row, locked until the transaction ends (NO KEY: first logins, whose rows
        refer to the project, go on meanwhile). SQLite: nothing to do, its writers take turns anyway."""
        if self.sql.dialect == "postgresql":
            await self.sql.run("SELECT id FROM projects WHERE id = :id FOR NO KEY UPDATE", id=project_id)

    async def members(self, project_id: str) -> list[Member]:
        rows = await self.sql.all(
            "SELECT s.*, m.role AS member_role, m.created_at AS added_at FROM memberships m"
            " JOIN staff_accounts s ON s.id = m.staff_id WHERE m.project_id = :p ORDER BY m.created_at, s.id",
            p=project_id,
        )
        staff = StaffRepo(self.sql)
        return [
            Member(staff.from_row(r), Role(r["member_role"]), self.sql.when(r["added_at"]))  # type: ignore[arg-type]
            for r in rows
        ]

    async def remove_member(self, project_id: str, staff_id: str) -> bool:
        removed = await self.sql.run(
            "DELETE FROM memberships WHERE project_id = :p AND staff_id = :s", p=project_id, s=staff_id
        )
        return removed == 1

    async def owner_count(self, project_id: str) -> int:
        return int(
            await self.sql.scalar(
                "SELECT COUNT(*) FROM memberships WHERE project_id = :p AND role = :owner",
                p=project_id,
                owner=Role.OWNER.value,
            )
        )

    async def get(self, project_id: str) -> Project | None:
        return self._project(await self.sql.one("SELECT * FROM projects WHERE id = :id", id=project_id))

    async def oldest(self) -> Project | None:
        return self._project(await self.sql.one("SELECT * FROM projects ORDER BY created_at, id LIMIT 1"))

    async def for_staff(self, staff_id: str) -> list[tuple[Project, Role]]:
        rows = await self.sql.all(
            "SELECT p.*, m.role AS member_role FROM projects p JOIN memberships m ON m.project_id = p.id"
            " WHERE m.staff_id = :staff ORDER BY p.created_at, p.id",
            staff=staff_id,
        )
        return [(self._project(r), Role(r["member_role"])) for r in rows]  # type: ignore[misc]

    async def membership(self, project_id: str, staff_id: str) -> Membership | None:
        role = await self.sql.scalar(
            "SELECT role FROM memberships WHERE project_id = :p AND staff_id = :s", p=project_id, s=staff_id
        )
        return Membership(project_id, staff_id, Role(role)) if role else None

    async def update(self, project_id: str, now: datetime, *, name: str | None, settings: dict[str, Any]) -> None:
        await self.sql.run(
            "UPDATE projects SET settings = :settings, updated_at = :now, name = COALESCE(:name, name) WHERE id = :id",
            settings=settings,
            now=now,
            name=name,
            id=project_id,
        )

    async def replace_audiences(self, project_id: str, audiences: Sequence[str]) -> None:
        """This project's extra audiences become ``audiences`` (other projects may list them too)."""
        await self.sql.run("DELETE FROM project_audiences WHERE project_id = :id", id=project_id)
        for aud in audiences:
            await self.sql.run(
                "INSERT INTO project_audiences (audience, project_id) VALUES (:aud, :id)", aud=aud, id=project_id
            )

    async def for_audience(self, audience: str) -> list[str]:
        """The projects that accept ``audience``, oldest listing first."""
        rows = await self.sql.all(
            "SELECT project_id FROM project_audiences WHERE audience = :aud ORDER BY project_id", aud=audience
        )
        return [str(r["project_id"]) for r in rows]

    async def set_secret(self, project_id: str, sealed: bytes, now: datetime) -> None:
        await self.sql.run(
            "UPDATE projects SET secret_sealed = :sealed, updated_at = :now WHERE id = :id",
            sealed=sealed,
            now=now,
            id=project_id,
        )

    async def take_seat(self, project_id: str, limit: int | None) -> bool:
        """Count one more identified user, unless that would pass ``limit``."""
        if limit is None:
            # Any shard will do, so concurrent first logins rarely meet on one row; and nothing
            # depends on the outcome, so on PostgreSQL the row is locked only by the transaction's
            # last statement, just before COMMIT.
            await self.sql.write_later(
                "UPDATE seat_counters SET used = used + 1 WHERE project_id = :id AND shard = :shard",
                id=project_id,
                shard=random.randrange(SEAT_SHARDS),
            )
            return True
        # Under a limit every new seat goes to shard 0, whose row lock queues the
        # first logins and whose count is re-read after the wait; the other
        # shards no longer grow, so their sum read alongside is exact too.
        changed = await self.sql.run(
            "UPDATE seat_counters SET used = used + 1 WHERE project_id = :id AND shard = 0 AND used"
            " + (SELECT COALESCE(SUM(used), 0) FROM seat_counters WHERE project_id = :id AND shard > 0) < :limit",
            id=project_id,
            limit=limit,
        )
        return changed == 1

    async def release_seat(self, project_id: str) -> None:
        await self.sql.run(
            "UPDATE seat_counters SET used = used - 1 WHERE project_id = :id AND shard = ("
            "SELECT MIN(shard) FROM seat_counters WHERE project_id = :id AND used > 0) AND used > 0",
            id=project_id,
        )

    async def seats_used(self, project_id: str) -> int:
        used = await self.sql.scalar("SELECT SUM(used) FROM seat_counters WHERE project_id = :id", id=project_id)
        return int(used or 0)

    def _project(self, r: dict[str, Any] | None) -> Project | None:
        if r is None:
            return None
        sealed = r["secret_sealed"]
        return Project(
            r["id"],
            r["name"],
            self.sql.when(r["created_at"]),  # type: ignore[arg-type]
            dict(self.sql.document(r["settings"])),
            bytes(sealed) if sealed is not None else None,
        )


# How a login finds its user ``e``, the value looked up standing for ``{v}``: written once for the
# statements that look for one user (``_FIND_BY``) and those over ``input`` (``_FIND_EACH``).
_FIND_WHERE = {
    "external_id": "e.external_id = {v}",
    # "NOT anonymous" as the partial unique index says it (tables.py), so that the index serves it.
    "email": "e.email = {v} AND NOT e.anonymous",
    "id": "e.id = {v} AND e.merged_into IS NULL AND e.disabled_at IS NULL",
}
_FIND_BY = {
    by: f"SELECT e.* FROM end_users e WHERE e.project_id = :p AND {where.format(v=':v')}"  # noqa: S608
    for by, where in _FIND_WHERE.items()
}
# A login by the account's own id (a password checked against it) holds the row until it commits, so that a
# vouched login displacing the account either waits and then ends the new session, or goes first and leaves
# nothing to sign in to. (SQLite's writers take turns: nothing to hold.)
_HELD = {"id": " FOR SHARE"}


def _find_sql(by: str, dialect: str) -> str:
    return _FIND_BY[by] + (_HELD.get(by, "") if dialect == "postgresql" else "")


# Rows as column -> value, for an INSERT … VALUES and for the one-statement logins' INSERT … SELECT.
def _end_user_values(user_id: str, project_id: str, new: NewEndUser, now: datetime) -> dict[str, Any]:
    return {
        "id": user_id,
        "project_id": project_id,
        "external_id": new.external_id,
        "email": new.email,
        "email_verified": new.email_verified,
        "firstname": new.firstname,
        "lastname": new.lastname,
        "anonymous": new.anonymous,
        "created_via": new.created_via.value,
        "metadata": new.metadata,
        "password_hash": new.password_hash,
        "created_at": now,
        "last_seen_at": now,
    }


def _session_values(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind.value,
        "project_id": s.project_id,
        "subject_id": s.subject_id,
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "method": s.method,
    }


def _audit_values(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "action": e.action,
        "project_id": e.project_id,
        "actor_type": e.actor_type,
        "actor_id": e.actor_id,
        "subject_id": e.subject_id,
        "ip": e.ip,
        "reason": e.reason,
        "details": e.details,
    }


def _insert(table: str, values: Mapping[str, Any]) -> str:
    """INSERT of one row, its parameters named as its columns."""
    return _insert_sql(table, tuple(values))


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    # Made once per table and column list: every login writes its session and audit rows through it.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f':{c}' for c in columns)})"  # noqa: S608


# PostgreSQL's one-statement logins are written over ``input``, one row per login, so that the adapter may
# send those of several requests as one statement (statement_batches.py).


def _prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{column}": value for column, value in values.items()}


@lru_cache(maxsize=64)
def _insert_each_sql(
    table: str, prefix: str, columns: tuple[str, ...], source: str, taken: tuple[tuple[str, str], ...] = ()
) -> str:
    """INSERT of a row for each row of ``source``, its values the ``source`` columns named by ``prefix``
    and the column's name; the columns in ``taken`` get those SQL expressions instead."""
    expressions = dict(taken)
    selected = ", ".join(expressions.get(column, f"{source}.{prefix}{column}") for column in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM {source}"  # noqa: S608


_FIND_EACH = {by: where.format(v="input.v") for by, where in _FIND_WHERE.items()}


@lru_cache(maxsize=64)
def _sign_in_each_sql(
    by: str,
    verified_email: bool,
    has_external_id: bool,
    profile: tuple[str, ...],
    session: tuple[str, ...],
    audit: tuple[str, ...],
) -> tuple[str, Columns]:
    """``find_and_sign_in`` on PostgreSQL, and its input columns. ``ok`` is the logins whose user is found
    unchanged (``Unchanged.holds_for``; metadata compared as the JSON text it was stored as: the same text
    is the same value, a value written another way only sends the login the long way) in a project
    without a webhook: those write their session, their audit row and, when due, ``lastSeenAt``."""
    guards = ["TRUE"]
    if verified_email:
        guards.append("u.email_verified")
    if has_external_id:
        guards.append("u.external_id IS NOT NULL")
    guards += [
        "CAST(u.metadata AS text) = input.u_metadata" if column == "metadata" else f"u.{column} = input.u_{column}"
        for column in profile
    ]
    the_user = (("subject_id", "ok.user_id"), ("actor_id", "ok.user_id"))
    sql = (
        f"u AS (SELECT input.n, e.* FROM input JOIN end_users e ON e.project_id = input.p AND {_FIND_EACH[by]}"  # noqa: S608
        f"{' FOR SHARE OF e' if by in _HELD else ''}),"
        " ok AS (SELECT input.*, u.id AS user_id, u.last_seen_at AS user_last_seen_at FROM u JOIN input USING (n)"
        f"   WHERE {' AND '.join(guards)}"
        "   AND NOT EXISTS (SELECT 1 FROM webhooks WHERE webhooks.project_id = input.p)),"
        " seen AS (UPDATE end_users SET last_seen_at = ok.now FROM ok WHERE end_users.id = ok.user_id"
        "   AND (ok.user_last_seen_at IS NULL OR ok.user_last_seen_at <= ok.stale) RETURNING ok.n),"
        f" s AS ({_insert_each_sql('sessions', 's_', session, 'ok', the_user)}),"
        f" a AS ({_insert_each_sql('audit_events', 'a_', audit, 'ok', the_user)})"
        " SELECT u.*, u.n IN (SELECT n FROM ok) AS wrote, u.n IN (SELECT n FROM seen) AS seen FROM u"
    )
    columns = (
        ("p", "text"),
        ("v", "text"),
        ("now", "timestamptz"),
        ("stale", "timestamptz"),
        *(("u_metadata", "text") if c == "metadata" else (f"u_{c}", input_type("end_users", c)) for c in profile),
        *input_columns("sessions", "s_", [c for c in session if c != "subject_id"]),
        *input_columns("audit_events", "a_", [c for c in audit if c not in ("subject_id", "actor_id")]),
    )
    return sql, columns


def _guard_values(unchanged: Unchanged) -> dict[str, Any]:
    return {
        f"u_{column}": orjson.dumps(value).decode() if column == "metadata" else value  # as the JSON codec writes it
        for column, value in unchanged.profile.items()
    }


@lru_cache(maxsize=64)
def _create_each_sql(
    user: tuple[str, ...], session: tuple[str, ...], created: tuple[str, ...], signed_in: tuple[str, ...]
) -> tuple[str, Columns]:
    """``create_and_sign_in`` on PostgreSQL, and its input columns: ``made`` is the logins whose user was
    inserted (no unique key held, no webhook on the project), each taking a seat. A batch counts its seats
    on one shard per project (its first login's), its counter rows locked in one order: batches that
    each locked shards in their own order deadlocked."""
    sql = (
        f"u AS ({_insert_each_sql('end_users', 'u_', user, 'input')}"  # noqa: S608
        "   WHERE NOT EXISTS (SELECT 1 FROM webhooks WHERE webhooks.project_id = input.u_project_id)"
        "   ON CONFLICT DO NOTHING RETURNING id),"
        " made AS (SELECT input.* FROM input JOIN u ON u.id = input.u_id),"
        " taken AS (SELECT u_project_id AS project_id, (SELECT shard FROM input WHERE n = 1) AS shard,"
        "   count(*) AS seats FROM made GROUP BY u_project_id),"
        " held AS (SELECT taken.* FROM seat_counters JOIN taken USING (project_id, shard)"
        "   ORDER BY project_id FOR UPDATE OF seat_counters),"
        " seat AS (UPDATE seat_counters SET used = used + held.seats FROM held"
        "   WHERE seat_counters.project_id = held.project_id AND seat_counters.shard = held.shard),"
        f" s AS ({_insert_each_sql('sessions', 's_', session, 'made')}),"
        f" c AS ({_insert_each_sql('audit_events', 'c_', created, 'made')}),"
        f" a AS ({_insert_each_sql('audit_events', 'a_', signed_in, 'made')})"
        " SELECT input.n, input.n IN (SELECT n FROM made) AS wrote FROM input"
    )
    columns = (
        ("shard", "integer"),
        *input_columns("end_users", "u_", user),
        *input_columns("sessions", "s_", session),
        *input_columns("audit_events", "c_", created),
        *input_columns("audit_events", "a_", signed_in),
    )
    return sql, columns


SEAT_SHARDS = 16
_NEW_SEAT_COUNTERS = "INSERT INTO seat_counters (project_id, shard, used) VALUES " + ", ".join(  # noqa: S608
    f"(:id, {shard}, 0)" for shard in range(SEAT_SHARDS)
)


class EndUserRepo(_Repo):
    async def add_if_absent(self, user_id: str, project_id: str, new: NewEndUser, now: datetime) -> bool:
        return await self._insert_if_absent("end_users", "id", _end_user_values(user_id, project_id, new, now))

    async def create_and_sign_in(self, attempt: CreateAtOnce) -> bool:
        """The new user and its first login, unless a unique key is held or the project has a webhook;
        False, with nothing written, otherwise. On PostgreSQL that is one statement."""
        if self.sql.dialect == "sqlite":
            return await self._create_then_sign_in(attempt)
        user = _end_user_values(attempt.user_id, attempt.project_id, attempt.profile, attempt.now)
        session = _session_values(attempt.session)
        created, signed_in = _audit_values(attempt.created), _audit_values(attempt.signed_in)
        sql, columns = _create_each_sql(tuple(user), tuple(session), tuple(created), tuple(signed_in))
        row = await self.sql.guarded_write_each(
            sql,
            columns,
            {
                "shard": random.randrange(SEAT_SHARDS),
                **_prefixed("u_", user),
                **_prefixed("s_", session),
                **_prefixed("c_", created),
                **_prefixed("a_", signed_in),
            },
        )
        return row is not None and bool(row["wrote"])

    async def find(self, project_id: str, lookup: Lookup) -> EndUser | None:
        if lookup.by == "external_id_or_id":
            # TypingMind "id": the customer's id first, then Chatgate's own (read, not held: also the users API).
            return await self.find(project_id, Lookup("external_id", lookup.value)) or self.from_row(
                await self.sql.one(_FIND_BY["id"], p=project_id, v=lookup.value)
            )
        # An anonymous visitor's email (typed, unverified) identifies nobody: only identified users hold one.
        return self.from_row(
            await self.sql.one(
                _find_sql(lookup.by, self.sql.dialect),
                p=project_id,
                v=lookup.value,
            )
        )

    async def find_and_sign_in(self, attempt: SignInAtOnce) -> FoundUser:
        """The user ``attempt.lookup`` finds and, when that user is ``attempt.unchanged`` and the project has
        no webhook (a ``user.signed_in`` payload is made from the user the service has read), the login
        recorded. On PostgreSQL that is one statement: a round trip saved per returning login."""
        if self.sql.dialect == "sqlite":
            return await self._find_then_sign_in(attempt)
        if attempt.lookup.by not in _FIND_BY:
            return FoundUser(await self.find(attempt.project_id, attempt.lookup), signed_in=False, seen=False)
        unchanged, session, audit = attempt.unchanged, _session_values(attempt.session), _audit_values(attempt.audit)
        sql, columns = _sign_in_each_sql(
            attempt.lookup.by,
            unchanged.verified_email,
            unchanged.has_external_id,
            tuple(unchanged.profile),
            tuple(session),
            tuple(audit),
        )
        row = await self.sql.guarded_write_each(
            sql,
            columns,
            {
                "p": attempt.project_id,
                "v": attempt.lookup.value,
                "now": attempt.now,
                "stale": attempt.now - LAST_SEEN_RESOLUTION,
                **_guard_values(unchanged),
                **_prefixed("s_", session),
                **_prefixed("a_", audit),
            },
        )
        if row is None:
            return FoundUser(None, signed_in=False, seen=False)
        return FoundUser(self.from_row(row), signed_in=bool(row["wrote"]), seen=bool(row["seen"]))

    async def _create_then_sign_in(self, attempt: CreateAtOnce) -> bool:
        """``create_and_sign_in`` a statement at a time (SQLite: no round trips to save), by the same rules."""
        if await has_webhooks(self.sql, attempt.project_id):
            return False
        if not await self.add_if_absent(attempt.user_id, attempt.project_id, attempt.profile, attempt.now):
            return False
        await ProjectRepo(self.sql).take_seat(attempt.project_id, None)
        audit = AuditRepo(self.sql)
        await audit.add(attempt.created)
        await SessionRepo(self.sql).add(attempt.session)
        await audit.add(attempt.signed_in)
        return True

    async def _find_then_sign_in(self, attempt: SignInAtOnce) -> FoundUser:
        """``find_and_sign_in`` a statement at a time (SQLite: no round trips to save), by the same rules."""
        user = await self.find(attempt.project_id, attempt.lookup)
        if user is None or not attempt.unchanged.holds_for(user) or await has_webhooks(self.sql, user.project_id):
            return FoundUser(user, signed_in=False, seen=False)
        seen = seen_is_due(user, attempt.now)
        if seen:
            await self.seen(user.id, attempt.now, {})
        await SessionRepo(self.sql).add(replace(attempt.session, subject_id=user.id))
        await AuditRepo(self.sql).add(replace(attempt.audit, subject_id=user.id, actor_id=user.id))
        return FoundUser(user, signed_in=True, seen=seen)

    async def get(self, project_id: str, user_id: str) -> EndUser | None:
        return await self.find(project_id, Lookup("external_id_or_id", user_id))

    async def by_id(self, user_id: str) -> EndUser | None:
        return self.from_row(await self.sql.one("SELECT * FROM end_users WHERE id = :id", id=user_id))

    async def seen(self, user_id: str, now: datetime, changes: Mapping[str, Any]) -> None:
        assignments = "".join(f", {column} = :{column}" for column in changes)
        await self.sql.run(
            f"UPDATE end_users SET last_seen_at = :now{assignments} WHERE id = :id",  # noqa: S608
            now=now,
            id=user_id,
            **changes,
        )

    async def attach_external_id(self, user_id: str, project_id: str, external_id: str) -> bool:
        """The externalId for a user without one, unless another user of the project holds it. The unique
        key decides a race with a login creating that holder: this one then changes nothing."""
        changed = await self.sql.run_unless_duplicate(
            "UPDATE end_users SET external_id = :x WHERE id = :id AND project_id = :p AND external_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM end_users WHERE project_id = :p AND external_id = :x)",
            x=external_id,
            id=user_id,
            p=project_id,
        )
        return changed == 1

    async def disable(self, user_id: str, now: datetime) -> bool:
        """The account gives up its email and password for good: nothing can sign in to it any more."""
        changed = await self.sql.run(
            "UPDATE end_users SET email = NULL, password_hash = NULL, disabled_at = :now"
            " WHERE id = :id AND disabled_at IS NULL",
            now=now,
            id=user_id,
        )
        return changed == 1

    async def mark_merged(self, user_id: str, into_id: str) -> None:
        await self.sql.run("UPDATE end_users SET merged_into = :into WHERE id = :id", into=into_id, id=user_id)

    async def page(
        self,
        project_id: str,
        *,
        created_via: CreatedVia | None,
        query: str | None,
        limit: int,
        after: str | None,
    ) -> list[EndUser]:
        where = ["project_id = :p", "merged_into IS NULL", "disabled_at IS NULL"]
        params: dict[str, Any] = {"p": project_id, "limit": limit}
        if created_via is not None:
            where.append("created_via = :via")
            params["via"] = created_via.value
        if query:
            params["pattern"] = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "("
                + " OR ".join(
                    f"LOWER({c}) LIKE :pattern ESCAPE '\\'" for c in ("email", "external_id", "firstname", "lastname")
                )
                + ")"
            )
        if after:
            where.append("id > :after")
            params["after"] = after
        rows = await self.sql.all(
            f"SELECT * FROM end_users WHERE {' AND '.join(where)} ORDER BY id LIMIT :limit",  # noqa: S608
            **params,
        )
        return [self.from_row(r) for r in rows]  # type: ignore[misc]

    def from_row(self, r: dict[str, Any] | None) -> EndUser | None:
        if r is None:
            return None
        return EndUser(
            id=r["id"],
            project_id=r["project_id"],
            external_id=r["external_id"],
            email=r["email"],
            firstname=r["firstname"],
            lastname=r["lastname"],
            anonymous=bool(r["anonymous"]),
            created_via=CreatedVia(r["created_via"]),
            metadata=dict(self.sql.document(r["metadata"])),
            created_at=self.sql.when(r["created_at"]),  # type: ignore[arg-type]
            last_seen_at=self.sql.when(r["last_seen_at"]),
            password_hash=r["password_hash"],
            email_verified=bool(r["email_verified"]),
        )


class SessionRepo(_Repo):
    async def add(self, s: Session) -> None:
        values = _session_values(s)
        await self.sql.write_later(_insert("sessions", values), **values)

    async def get(self, session_id: str) -> Session | None:
        return self._session(await self.sql.one("SELECT * FROM sessions WHERE id = :id", id=session_id))

    async def get_with_end_user(self, session_id: str) -> tuple[Session | None, EndUser | None]:
        """A session and its end user in one statement (the auth/me hot path)."""
        r = await self.sql.one(
            "SELECT s.id AS session_id, s.kind, s.project_id AS session_project_id, s.subject_id,"
            " s.created_at AS session_created_at, s.expires_at, s.revoked_at, u.*"
            " FROM sessions s LEFT JOIN end_users u ON u.id = s.subject_id WHERE s.id = :id",
            id=session_id,
        )
        if r is None:
            return None, None
        session = self._session(
            {
                "id": r["session_id"],
                "kind": r["kind"],
                "project_id": r["session_project_id"],
                "subject_id": r["subject_id"],
                "created_at": r["session_created_at"],
                "expires_at": r["expires_at"],
                "revoked_at": r["revoked_at"],
            }
        )
        return session, EndUserRepo(self.sql).from_row(r) if r["id"] is not None else None

    def _session(self, r: dict[str, Any] | None) -> Session | None:
        if r is None:
            return None
        when = self.sql.when
        return Session(
            r["id"],
            SessionKind(r["kind"]),
            r["project_id"],
            r["subject_id"],
            when(r["created_at"]),  # type: ignore[arg-type]
            when(r["expires_at"]),  # type: ignore[arg-type]
            when(r["revoked_at"]),
            r.get("method"),
        )

    async def revoke(self, session_id: str, now: datetime) -> None:
        await self.sql.run(
            "UPDATE sessions SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL", now=now, id=session_id
        )

    async def forget_expired(self, now: datetime) -> int:
        """Delete sessions past their expiry: their tokens are refused by ``exp`` anyway."""
        return await self.sql.run("DELETE FROM sessions WHERE expires_at < :now", now=now)

    async def live_for_subject(self, subject_id: str, now: datetime, limit: int) -> list[Session]:
        rows = await self.sql.all(
            "SELECT * FROM sessions WHERE subject_id = :id AND revoked_at IS NULL AND expires_at > :now"
            " ORDER BY created_at DESC, id DESC LIMIT :limit",
            id=subject_id,
            now=now,
            limit=limit,
        )
        return [self._session(r) for r in rows]  # type: ignore[misc]

    async def revoke_subject(self, subject_id: str, now: datetime) -> int:
        """End the subject's live sessions (expired ones are refused anyway); how many."""
        return await self.sql.run(
            "UPDATE sessions SET revoked_at = :now WHERE subject_id = :id AND revoked_at IS NULL AND expires_at > :now",
            now=now,
            id=subject_id,
        )


class ApiKeyRepo(_Repo):
    async def add(self, k: ApiKey) -> None:
        await self.sql.run(
            "INSERT INTO api_keys (id, project_id, name, roles, prefix, key_hash, created_at, expires_at)"
            " VALUES (:id, :project_id, :name, :roles, :prefix, :key_hash, :created_at, :expires_at)",
            id=k.id,
            project_id=k.project_id,
            name=k.name,
            roles=list(k.roles),
            prefix=k.prefix,
            key_hash=k.key_hash,
            created_at=k.created_at,
            expires_at=k.expires_at,
        )

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        return self._key(await self.sql.one("SELECT * FROM api_keys WHERE prefix = :prefix", prefix=prefix))

    async def for_project(self, project_id: str) -> list[ApiKey]:
        rows = await self.sql.all("SELECT * FROM api_keys WHERE project_id = :p ORDER BY id", p=project_id)
        return [self._key(r) for r in rows]  # type: ignore[misc]

    async def revoke(self, project_id: str, key_id: str, now: datetime) -> bool:
        changed = await self.sql.run(
            "UPDATE api_keys SET revoked_at = :now WHERE project_id = :p AND id = :id AND revoked_at IS NULL",
            now=now,
            p=project_id,
            id=key_id,
        )
        return changed == 1

    async def used(self, key_id: str, now: datetime) -> None:
        await self.sql.run("UPDATE api_keys SET last_used_at = :now WHERE id = :id", now=now, id=key_id)

    def _key(self, r: dict[str, Any] | None) -> ApiKey | None:
        if r is None:
            return None
        when = self.sql.when
        return ApiKey(
            r["id"],
            r["project_id"],
            r["name"],
            tuple(self.sql.document(r["roles"])),
            r["prefix"],
            r["key_hash"],
            when(r["created_at"]),  # type: ignore[arg-type]
            when(r["expires_at"]),
            when(r["revoked_at"]),
            when(r["last_used_at"]),
        )


class TokenIdRepo(_Repo):
    async def consume(self, project_id: str, jti: str, expires_at: datetime | None) -> bool:
        """Mark ``jti`` used; False when it already was."""
        return await self._insert_if_absent(
            "used_token_ids", "jti", {"project_id": project_id, "jti": jti, "expires_at": expires_at}
        )

    async def forget_expired(self, now: datetime) -> int:
        return await self.sql.run("DELETE FROM used_token_ids WHERE expires_at < :now", now=now)


class AuditRepo(_Repo):
    async def add(self, e: AuditEvent) -> None:
        values = _audit_values(e)
        await self.sql.write_later(_insert("audit_events", values), **values)

    async def page(self, project_id: str, *, action: str | None, limit: int, before: str | None) -> list[AuditEvent]:
        where = ["project_id = :p"]
        params: dict[str, Any] = {"p": project_id, "limit": limit}
        if action:
            where.append("action = :action")
            params["action"] = action
        if before:
            where.append("id < :before")
            params["before"] = before
        rows = await self.sql.all(
            f"SELECT * FROM audit_events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit",  # noqa: S608
            **params,
        )
        when = self.sql.when
        return [
            AuditEvent(
                r["id"],
                when(r["at"]),  # type: ignore[arg-type]
                r["action"],
                r["project_id"],
                r["actor_type"],
                r["actor_id"],
                r["subject_id"],
                r["ip"],
                r["reason"],
                dict(self.sql.document(r["details"])),
            )
            for r in rows
        ]


# On PostgreSQL a count's commit does not wait for its WAL to reach the disk (synchronous_commit
# off for that one statement): hits on one key (one address) queued behind an fsync each, a third
# of the rate; a crash may forget the last moment's hits, which a throttle can afford.
_HIT_SOURCE = {
    "sqlite": "VALUES (:rule, :key, :window_start, :window_end, 1)",
    "postgresql": "SELECT CAST(:rule AS VARCHAR), CAST(:key AS VARCHAR), CAST(:window_start AS BIGINT),"
    " CAST(:window_end AS BIGINT), 1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_wait",
}


class RateCounterRepo(_Repo):
    """Rate-limit hits; used by the counter adapter (rate_counters.py), never inside a service's transaction."""

    async def hit(self, rule: str, key: str, window_start: int, window_end: int) -> int:
        """One atomic upsert: the row of a later window starts again at 1; a hit stamped with an
        earlier window (a process whose clock lags) counts in the stored one."""
        hits = await self.sql.scalar(
            "INSERT INTO rate_counters (rule, key, window_start, window_end, hits) "
            + _HIT_SOURCE[self.sql.dialect]
            + " ON CONFLICT (rule, key) DO UPDATE SET"
            " hits = CASE WHEN excluded.window_start > rate_counters.window_start THEN 1"
            " ELSE rate_counters.hits + 1 END,"
            " window_start = CASE WHEN excluded.window_start > rate_counters.window_start"
            " THEN excluded.window_start ELSE rate_counters.window_start END,"
            " window_end = CASE WHEN excluded.window_start > rate_counters.window_start"
            " THEN excluded.window_end ELSE rate_counters.window_end END"
            " RETURNING hits",
            rule=rule,
            key=key,
            window_start=window_start,
            window_end=window_end,
        )
        return int(hits)

    async def forget_finished(self, now: int) -> int:
        return await self.sql.run("DELETE FROM rate_counters WHERE window_end <= :now", now=now)


class CommitHook:
    """Where a committed transaction's events go in this process (the live hub), set at wiring."""

    def __init__(self) -> None:
        self._receivers: list[Callable[[list[Event]], None]] = []

    def connect(self, receiver: Callable[[list[Event]], None]) -> None:
        self._receivers.append(receiver)

    def publish(self, events: list[Event]) -> None:
        if events:
            for receiver in self._receivers:
                receiver(events)


class Store:
    """The repositories of one transaction: what ``chatgate.services.ports.Transaction`` asks for."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.staff = StaffRepo(sql)
        self.projects = ProjectRepo(sql)
        self.end_users = EndUserRepo(sql)
        self.sessions = SessionRepo(sql)
        self.api_keys = ApiKeyRepo(sql)
        self.token_ids = TokenIdRepo(sql)
        self.audit = AuditRepo(sql)
        self.conversations = ConversationRepo(sql)
        self.events = EventRepo(sql)
        self.messages = MessageRepo(sql, self.events)
        self.webhooks = WebhookRepo(sql)
        self.webhook_deliveries = WebhookDeliveryRepo(sql)
