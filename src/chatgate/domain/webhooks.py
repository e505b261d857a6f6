"""Webhooks: the events a project's endpoints may ask for, the rules for their addresses,
and the retry schedule of a delivery.

A delivery is written to an outbox (``webhook_deliveries``) in the transaction
of the change it reports, then sent by a dispatcher that runs in every server
process: at least once, signed, retried with exponential backoff for 24 hours.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

from chatgate.domain.conversations import iso
from chatgate.domain.models import EndUser

MAX_URL_CHARS = 2048
MAX_WEBHOOKS_PER_PROJECT = 20
# A delivery is retried at least this long after its event, then marked failed.
RETRY_FOR = timedelta(hours=24)
MAX_WAIT_SECONDS = 3600
SECRET_PREFIX = "whsec_"


class WebhookEvent(enum.StrEnum):
    USER_CREATED = "user.created"
    USER_SIGNED_IN = "user.signed_in"
    CONVERSATION_CREATED = "conversation.created"
    MESSAGE_CREATED = "message.created"
    CONVERSATION_MERGED = "conversation.merged"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Webhook:
    id: str
    project_id: str
    url: str
    events: tuple[WebhookEvent, ...]
    secret_sealed: bytes
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    project_id: str
    event: WebhookEvent
    data_json: str  # the event's ``data``, as the JSON text that is sent
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    lease: str | None = None  # set while one process is sending it


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the endpoint's status code, or why nothing was sent or answered."""

    status_code: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_events(names: list[str]) -> tuple[tuple[WebhookEvent, ...], str | None]:
    """The events named (each once, in a stable order), or the problem with the list."""
    if not names:
        return (), "must name at least one event"
    known = {e.value: e for e in WebhookEvent}
    unknown = [name for name in names if name not in known]
    if unknown:
        return (), f"unknown event {unknown[0]!r}: expected some of {', '.join(known)}"
    return tuple(e for e in WebhookEvent if e.value in names), None


def url_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot receive webhooks, or None.

    Only ``https://`` to a public address, unless the operator allows private
    ones (``CHATGATE_WEBHOOK_ALLOW_PRIVATE``). A host name is checked again
    after it is resolved, at every delivery.
    """
    if len(url) > MAX_URL_CHARS:
        return f"must be at most {MAX_URL_CHARS} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https:// URL"
    if parts.scheme == "http" and not allow_private:
        return "must use https:// (plain http:// is allowed only with CHATGATE_WEBHOOK_ALLOW_PRIVATE=1)"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password; verify the Chatgate-Signature header instead"
    if parts.fragment or url.endswith("#"):
        return "must not have a #fragment"
    if port == 0:
        return "has an invalid port"
    if not allow_private and _private_host(parts):
        return (
            "must point to a public address, not a loopback, private, link-local or multicast one"
            " (allowed only with CHATGATE_WEBHOOK_ALLOW_PRIVATE=1)"
        )
    return None


def _private_host(parts: SplitResult) -> bool:
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: checked once resolved, at each delivery
    return not is_public_address(address)


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A unicast address on the public internet: not loopback, private, link-local, multicast, reserved…"""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def retry_wait(attempts: int, base_seconds: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: base, twice that, four times … at most an hour."""
    exponent = min(max(attempts - 1, 0), 32)
    return timedelta(seconds=min(base_seconds * 2**exponent, MAX_WAIT_SECONDS))


def after_failure(delivery: Delivery, now: datetime, base_seconds: int) -> tuple[DeliveryStatus, datetime]:
    """A failed attempt: try again after the backoff, unless the delivery is older than RETRY_FOR."""
    if now - delivery.created_at >= RETRY_FOR:
        return DeliveryStatus.FAILED, now
    return DeliveryStatus.PENDING, now + retry_wait(delivery.attempts, base_seconds)


def user_view(u: EndUser) -> dict[str, Any]:
    """An end user as the API and webhooks show it (never a password hash)."""
    return {
        "_id": u.id,
        "externalId": u.external_id,
        "email": u.email,
        "emailverified": u.email_verified,
        "firstname": u.firstname,
        "lastname": u.lastname,
        "fullName": u.full_name,
        "anonymous": u.anonymous,
        "createdVia": u.created_via.value,
        "metadata": u.metadata,
        "createdAt": iso(u.created_at),
        "lastSeenAt": iso(u.last_seen_at) if u.last_seen_at is not None else None,
    }
