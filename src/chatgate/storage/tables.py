"""The schema, as SQLAlchemy Core tables. Alembic migrations create it; unique
constraints here are what make "created on first sight" safe under races."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _id(name: str = "id", *args: Any, **kw: Any) -> Column[str]:
    return Column(name, String(24), *args, **kw)


staff_accounts = Table(
    "staff_accounts",
    metadata,
    _id(primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("firstname", String(128), nullable=False),
    Column("lastname", String(128), nullable=False),
    Column("email_verified", Boolean, nullable=False, default=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    _id(primary_key=True),
    Column("name", String(200), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("secret_sealed", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    _id("staff_id", ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "staff_id"),
)

# Extra custom-token audiences. Two projects may list the same one: the token
# goes to the project whose key verifies it.
project_audiences = Table(
    "project_audiences",
    metadata,
    Column("audience", String(512), primary_key=True),
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Index(None, "project_id"),
)

# Seats in use, spread over a few rows per project (shards) so that the first
# logins of a project without a limit do not all queue on one row lock. Under a
# limit new seats are counted on shard 0, and a conditional UPDATE of that one
# row is the guard.
seat_counters = Table(
    "seat_counters",
    metadata,
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("shard", Integer, primary_key=True, default=0),
    Column("used", Integer, nullable=False, default=0),
)

end_users = Table(
    "end_users",
    metadata,
    _id(primary_key=True),
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", String(256), nullable=True),
    Column("email", String(254), nullable=True),
    # False for an email the user typed (sign-up), True for one a signed token vouched for.
    Column("email_verified", Boolean, nullable=False, default=False),
    Column("firstname", String(128), nullable=True),
    Column("lastname", String(128), nullable=True),
    Column("anonymous", Boolean, nullable=False),
    Column("created_via", String(32), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("merged_into", String(24), nullable=True),
    # Set when a vouched login took this account's unverified email: it can no longer sign in.
    Column("disabled_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=True),
    UniqueConstraint("project_id", "external_id"),
    # Identified users only: an anonymous visitor may keep an email it typed, which identifies nobody
    # and never stands in the way of the user who owns it.
    Index(
        "uq_end_users_identified_email",
        "project_id",
        "email",
        unique=True,
        sqlite_where=text("NOT anonymous"),
        postgresql_where=text("NOT anonymous"),
    ),
    Index(None, "project_id", "created_via", "id"),
    Index(None, "project_id", "id"),
)

sessions = Table(
    "sessions",
    metadata,
    _id(primary_key=True),
    Column("kind", String(16), nullable=False),
    _id("project_id", nullable=True),
    _id("subject_id", nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("method", String(32), nullable=True),
    Index(None, "subject_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id(primary_key=True),
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("prefix", String(12), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index(None, "project_id"),
)

# A token's jti is consumed by the login it completes; the primary key makes a replay lose.
used_token_ids = Table(
    "used_token_ids",
    metadata,
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    _id(primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    _id("project_id", nullable=True),
    Column("actor_type", String(16), nullable=True),
    _id("actor_id", nullable=True),
    _id("subject_id", nullable=True),
    Column("ip", String(64), nullable=True),
    Column("reason", String(64), nullable=True),
    Column("details", JSON, nullable=False),
    Index(None, "project_id", "id"),
)

# One row per (rule, key): the current fixed window of a rate rule and the hits in it.
# Windows are epoch seconds; a later window starts the count again (services/rate_limits.py).
rate_counters = Table(
    "rate_counters",
    metadata,
    Column("rule", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False),
)

# An end user's conversations; staff of the project see them all. Ids sort by creation.
conversations = Table(
    "conversations",
    metadata,
    _id(primary_key=True),
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    _id("user_id", ForeignKey("end_users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=True),
    Column("status", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "user_id", "id"),
    Index(None, "project_id", "id"),
)

# The unique (conversation, sender, client_id) is what makes a resent message return the first one;
# another sender's client_id is theirs, never a way to someone else's message.
messages = Table(
    "messages",
    metadata,
    _id(primary_key=True),
    _id("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    _id("project_id", nullable=False),
    Column("sender_type", String(8), nullable=False),
    _id("sender_id", nullable=False),
    Column("text", String(10_000), nullable=False),
    Column("client_id", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("conversation_id", "sender_id", "client_id"),
    Index(None, "conversation_id", "id"),
)

# What was pushed to devices, kept a while so a reconnecting client can ask for what it missed.
# Written in the transaction of the change it reports.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    _id("project_id", nullable=True),  # None: a staff session's end, which is no project's
    Column("type", String(32), nullable=False),
    _id("user_id", nullable=True),
    _id("session_id", nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "project_id", "seq"),
    Index(None, "user_id", "seq"),
    sqlite_autoincrement=True,
)

# HTTPS endpoints of a project that receive signed deliveries of the events they name
# (space-separated, e.g. "message.created user.created"). The signing secret is sealed.
webhooks = Table(
    "webhooks",
    metadata,
    _id(primary_key=True),
    _id("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", String(256), nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "project_id"),
)

# The outbox: one row per event and webhook, written in the transaction of the change it
# reports, sent by the dispatcher of any server process. ``lease`` marks the one process
# sending it until ``locked_until`` (past that, a crashed sender's claim lapses).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(primary_key=True),
    _id("webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    _id("project_id", nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the event's data, as the JSON text that is sent
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease", String(24), nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "webhook_id", "id"),
    Index(None, "status", "next_attempt_at"),
)

__all__ = ["metadata"]
