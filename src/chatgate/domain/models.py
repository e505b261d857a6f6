"""The things Chatgate keeps: staff, projects, end users, sessions, API keys.

Plain dataclasses: storage maps rows to them, services decide with them,
HTTP shapes them into bodies. No framework imports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"


class CreatedVia(enum.StrEnum):
    ANONYMOUS = "anonymous"
    EXTERNAL_AUTH_CODE = "external_auth_code"
    CUSTOM_TOKEN = "custom_token"
    CUSTOMER_LOGIN = "customer_login"
    EMAIL = "email"
    ADMIN = "admin"


class SessionKind(enum.StrEnum):
    STAFF = "staff"
    END_USER = "end_user"


@dataclass(frozen=True)
class StaffAccount:
    id: str
    email: str
    firstname: str
    lastname: str
    email_verified: bool
    password_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: datetime
    settings: dict[str, Any]
    secret_ciphertext: bytes | None = None

    @cached_property
    def effective_settings(self) -> dict[str, Any]:
        """The stored settings completed by today's defaults; worked out once per loaded project."""
        from chatgate.domain.project_settings import with_defaults

        return with_defaults(self.settings)


@dataclass(frozen=True)
class Membership:
    project_id: str
    staff_id: str
    role: Role


@dataclass(frozen=True)
class Member:
    """A membership with the account behind it, as the project's members list shows it."""

    account: StaffAccount
    role: Role
    added_at: datetime


@dataclass(frozen=True)
class EndUser:
    id: str
    project_id: str
    external_id: str | None
    email: str | None
    firstname: str | None
    lastname: str | None
    anonymous: bool
    created_via: CreatedVia
    metadata: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime | None
    password_hash: str | None = None
    # Typed by the user (email sign-up): False. Carried by a token the project signed: True.
    email_verified: bool = False

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.firstname, self.lastname) if part)


@dataclass(frozen=True)
class Session:
    id: str
    kind: SessionKind
    project_id: str | None
    subject_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    method: str | None = None  # the way in that made it (sessions stored before it was kept: None)


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    name: str
    roles: tuple[str, ...]
    prefix: str
    key_hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class NewEndUser:
    """What a login knows about a user it may create."""

    created_via: CreatedVia
    external_id: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    anonymous: bool = False
    password_hash: str | None = None
    email_verified: bool = False


@dataclass(frozen=True)
class AuditEvent:
    id: str
    at: datetime
    action: str
    project_id: str | None
    actor_type: str | None
    actor_id: str | None
    subject_id: str | None
    ip: str | None
    reason: str | None
    details: dict[str, Any]
