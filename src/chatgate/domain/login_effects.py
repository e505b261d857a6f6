"""What a login changes on the user it finds, as pure rules.

The sign-in service applies them one by one (services/end_user_auth.py). A
returning user's login that changes nothing but ``lastSeenAt`` needs no
decision after the user is read, so storage may find the user and record the
login in one statement; ``Unchanged`` is what that statement must find for
the rules below to have nothing to do, and a user it does not describe is
left to the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chatgate.domain.dialects import LoginClaim
from chatgate.domain.identity import Lookup
from chatgate.domain.models import AuditEvent, EndUser, NewEndUser, Session

# lastSeenAt is kept to the minute: a returning login within it writes nothing to the user row.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def takes_typed_email(claim: LoginClaim, user: EndUser) -> bool:
    """A signed token found, by its email, an account that only typed that email: the token's identity
    takes the email (the account is displaced), never the account."""
    return claim.vouched and claim.lookup.by == "email" and not user.email_verified


def gives_external_id(claim: LoginClaim, user: EndUser) -> bool:
    """Kustomer, email and externalId: a user found by email without an externalId is given this one."""
    return claim.attach_external_id is not None and user.external_id is None


def token_profile(profile: NewEndUser | None) -> dict[str, Any]:
    """The names and metadata a token gives: each one it gives (not empty) replaces the stored one."""
    if profile is None:
        return {}
    given = {"firstname": profile.firstname, "lastname": profile.lastname, "metadata": profile.metadata}
    return {column: value for column, value in given.items() if value}


def profile_updates(user: EndUser, profile: NewEndUser | None) -> dict[str, Any]:
    """The columns of ``user`` the token's profile changes, with their new values."""
    return {
        column: value for column, value in token_profile(profile).items() if not same_json(getattr(user, column), value)
    }


def same_json(stored: Any, given: Any) -> bool:
    """Whether two JSON values are the same value. Python's ``==`` holds ``true`` equal to ``1`` and
    ``1.0``: a token that turns ``{"trial": 1}`` into ``{"trial": true}`` changes the metadata."""
    if type(stored) is not type(given):
        return False
    if isinstance(stored, dict):
        return stored.keys() == given.keys() and all(same_json(stored[key], given[key]) for key in stored)
    if isinstance(stored, list):
        return len(stored) == len(given) and all(map(same_json, stored, given))
    return bool(stored == given)


def seen_is_due(user: EndUser, now: datetime) -> bool:
    """Whether this visit moves ``lastSeenAt`` (kept to the minute)."""
    return user.last_seen_at is None or now - user.last_seen_at >= LAST_SEEN_RESOLUTION


@dataclass(frozen=True)
class Unchanged:
    """What a found user must already be for a login to change nothing on it but ``lastSeenAt``."""

    verified_email: bool  # its email vouched for (the login looks up a vouched email)
    has_external_id: bool  # it has an externalId (the login would give it one)
    profile: dict[str, Any]  # these columns already hold these values

    def holds_for(self, user: EndUser) -> bool:
        return (
            (user.email_verified or not self.verified_email)
            and (user.external_id is not None or not self.has_external_id)
            and all(same_json(getattr(user, column), value) for column, value in self.profile.items())
        )


def unchanged_by(claim: LoginClaim) -> Unchanged:
    """What the user ``claim`` finds must be for its login to change nothing on it but ``lastSeenAt``."""
    return Unchanged(
        verified_email=claim.vouched and claim.lookup.by == "email",
        has_external_id=claim.attach_external_id is not None,
        profile=token_profile(claim.new_user),
    )


@dataclass(frozen=True)
class SignInAtOnce:
    """A returning user's login, for storage to record in the statement that finds the user when that user
    is ``unchanged``: the session and its audit row, whose subject (and the audit row's actor) is the user
    found, and ``lastSeenAt`` moved to ``now`` if ``seen_is_due``."""

    project_id: str
    lookup: Lookup
    unchanged: Unchanged
    session: Session
    audit: AuditEvent
    now: datetime


@dataclass(frozen=True)
class FoundUser:
    user: EndUser | None
    signed_in: bool  # the login is recorded: the session, its audit row, lastSeenAt
    seen: bool  # lastSeenAt moved to now


@dataclass(frozen=True)
class CreateAtOnce:
    """A first login, for storage to write in one statement unless a unique key is already held: the
    user (``user_id``, ``profile``), a seat of a project without a seat limit, the ``user.created``
    audit row, the session and the sign-in's audit row."""

    project_id: str
    user_id: str
    profile: NewEndUser
    session: Session
    created: AuditEvent
    signed_in: AuditEvent
    now: datetime
