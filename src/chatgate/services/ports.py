"""What the services need from storage, declared beside them: one small async
repository per aggregate, grouped in a transaction, opened by ``Storage``.

Adapters (``chatgate.storage.sqlite``, ``chatgate.storage.postgres``)
implement these; services import only this module. A use case names its one
transaction boundary with ``async with storage.write() as tx:`` (or
``read()``), and calls the repositories as plain ``await`` code inside it.

Inside a ``write()`` block a service awaits its repositories and nothing else
(no password hashing, no network): on SQLite the block is one savepoint of a
group commit that other requests share.

Rate-limit counts have a port of their own (``RateCounter``), outside any
transaction: a hit is counted and kept even when the request it counted is
then refused, and counting changes nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from chatgate.domain.conversations import Conversation, ConversationStatus, Event, Message, Viewer
from chatgate.domain.identity import Lookup
from chatgate.domain.login_effects import CreateAtOnce, FoundUser, SignInAtOnce
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
    StaffAccount,
)
from chatgate.domain.webhooks import Delivery, DeliveryStatus, Outcome, Webhook, WebhookEvent


class StaffRepository(Protocol):
    async def add(self, account: StaffAccount) -> bool:
        """Insert unless the email is taken; True when inserted."""

    async def by_email(self, email: str) -> StaffAccount | None: ...
    async def by_id(self, staff_id: str) -> StaffAccount | None: ...


class ProjectRepository(Protocol):
    async def add(self, project: Project, owner_id: str, now: datetime) -> None: ...
    async def get(self, project_id: str) -> Project | None: ...
    async def oldest(self) -> Project | None: ...
    async def for_staff(self, staff_id: str) -> list[tuple[Project, Role]]: ...
    async def update(self, project_id: str, now: datetime, *, name: str | None, settings: dict[str, Any]) -> None: ...
    async def set_secret(self, project_id: str, sealed: bytes, now: datetime) -> None: ...

    async def add_member(self, project_id: str, staff_id: str, role: Role, now: datetime) -> bool:
        """Insert unless already a member; True when inserted."""

    async def lock_members(self, project_id: str) -> None:
        """Make other transactions that change the project's members wait until this one ends."""

    async def membership(self, project_id: str, staff_id: str) -> Membership | None: ...
    async def members(self, project_id: str) -> list[Member]:
        """Every member with its account, in the order they were added."""

    async def set_role(self, project_id: str, staff_id: str, role: Role) -> None: ...

    async def remove_member(self, project_id: str, staff_id: str) -> bool:
        """Delete the membership; False when there was none."""

    async def owner_count(self, project_id: str) -> int: ...
    async def replace_audiences(self, project_id: str, audiences: Sequence[str]) -> None: ...
    async def for_audience(self, audience: str) -> list[str]: ...

    async def take_seat(self, project_id: str, limit: int | None) -> bool:
        """Count one more identified user unless that passes ``limit``; False when full."""

    async def release_seat(self, project_id: str) -> None: ...
    async def seats_used(self, project_id: str) -> int: ...


class EndUserRepository(Protocol):
    async def add_if_absent(self, user_id: str, project_id: str, new: NewEndUser, now: datetime) -> bool:
        """Insert unless a unique key (externalId, email) is held; True when inserted."""

    async def find(self, project_id: str, lookup: Lookup) -> EndUser | None: ...

    async def find_and_sign_in(self, attempt: SignInAtOnce) -> FoundUser:
        """Find the user and, if it is ``attempt.unchanged``, record the login: its session and audit row,
        and ``lastSeenAt`` if due; the transaction then writes nothing more. An adapter may always decline
        to record (``signed_in`` False); the service then writes the login itself."""

    async def create_and_sign_in(self, attempt: CreateAtOnce) -> bool:
        """Write the new user and its first login (``CreateAtOnce``) unless a unique key is already held or the
        project has a webhook; True when written, and the transaction then writes nothing more. False, with
        nothing written, otherwise: the service then writes the login itself."""

    async def get(self, project_id: str, user_ref: str) -> EndUser | None:
        """By ``externalId``, else by ``_id``."""

    async def by_id(self, user_id: str) -> EndUser | None: ...
    async def seen(self, user_id: str, now: datetime, changes: Mapping[str, Any]) -> None: ...

    async def attach_external_id(self, user_id: str, project_id: str, external_id: str) -> bool:
        """Set the user's externalId if it has none and no user of the project holds this one; True when set.

        Never fails on a unique key: a concurrent holder makes it answer False, the transaction unharmed.
        """

    async def disable(self, user_id: str, now: datetime) -> bool:
        """Take the account's email and password for good; False if it was disabled already."""

    async def mark_merged(self, user_id: str, into_id: str) -> None: ...

    async def page(
        self, project_id: str, *, created_via: CreatedVia | None, query: str | None, limit: int, after: str | None
    ) -> list[EndUser]: ...


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...
    async def get(self, session_id: str) -> Session | None: ...

    async def get_with_end_user(self, session_id: str) -> tuple[Session | None, EndUser | None]:
        """A session and its end user in one statement (the auth/me hot path)."""

    async def live_for_subject(self, subject_id: str, now: datetime, limit: int) -> list[Session]:
        """The subject's sessions that are neither revoked nor expired, newest first."""

    async def revoke(self, session_id: str, now: datetime) -> None: ...

    async def revoke_subject(self, subject_id: str, now: datetime) -> int:
        """End every live session of the subject; how many there were."""

    async def forget_expired(self, now: datetime) -> int: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...
    async def by_prefix(self, prefix: str) -> ApiKey | None: ...
    async def for_project(self, project_id: str) -> list[ApiKey]: ...
    async def revoke(self, project_id: str, key_id: str, now: datetime) -> bool: ...
    async def used(self, key_id: str, now: datetime) -> None: ...


class TokenIdRepository(Protocol):
    async def consume(self, project_id: str, jti: str, expires_at: datetime | None) -> bool:
        """Mark ``jti`` used; False when it already was."""

    async def forget_expired(self, now: datetime) -> int: ...


class AuditRepository(Protocol):
    async def add(self, event: AuditEvent) -> None: ...
    async def page(
        self, project_id: str, *, action: str | None, limit: int, before: str | None
    ) -> list[AuditEvent]: ...


class ConversationRepository(Protocol):
    async def add(self, conversation: Conversation) -> None: ...
    async def get(self, project_id: str, conversation_id: str) -> Conversation | None: ...

    async def page(
        self,
        project_id: str,
        *,
        user_id: str | None,
        status: ConversationStatus | None,
        updated_since: datetime | None,
        limit: int,
        before: str | None,
    ) -> list[Conversation]:
        """Newest first (by id); ``before`` is the last id of the previous page."""

    async def count_for_user(self, user_id: str) -> int:
        """The user's conversations; in a write, other transactions counting them wait for this one."""

    async def set_status(self, conversation_id: str, status: ConversationStatus, now: datetime) -> None: ...

    async def move_all(self, from_user_id: str, to_user_id: str, now: datetime) -> list[Conversation]:
        """Give every conversation of one user to another; the conversations moved, as they are now."""


class MessageRepository(Protocol):
    async def post(
        self, message: Message, event: Event, *, open_only: bool = False, owner_id: str | None = None
    ) -> Event | None:
        """Store the message, mark its conversation updated and store ``event`` (its announcement, for
        the conversation's user), if the conversation is in the message's project, open when
        ``open_only``, and ``owner_id``'s when given. None, and nothing written, when it is not, or
        when the conversation already holds a message of the same sender with this ``client_id``.
        The transaction's last write."""

    async def by_client_id(self, conversation_id: str, sender_id: str, client_id: str) -> Message | None:
        """The sender's earlier message with this ``client_id`` in the conversation."""

    async def page(self, conversation_id: str, *, after: str | None, before: str | None, limit: int) -> list[Message]:
        """Oldest first after ``after``; with only ``before``, the ``limit`` messages just before it."""


class EventRepository(Protocol):
    async def add(self, event: Event) -> Event:
        """Store the event; the same event numbered with its ``seq``."""

    async def hint(self, event: Event) -> None:
        """Tell the caches of every process about an internal event once the transaction commits, without
        storing it (a hint that is lost costs a cached copy its freshness, never a socket an event)."""

    async def since(self, viewer: Viewer, after_seq: int, limit: int) -> list[Event]:
        """The events ``viewer`` may see after ``after_seq``, in order."""

    async def after(self, after_seq: int, limit: int) -> list[Event]:
        """Every event after ``after_seq``, in order (for the feed that follows the table)."""

    async def last_seq(self) -> int: ...
    async def oldest_seq(self) -> int | None:
        """The oldest event still kept (older ones were pruned)."""

    async def forget_before(self, moment: datetime) -> int: ...


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook) -> None: ...
    async def get(self, project_id: str, webhook_id: str) -> Webhook | None: ...
    async def by_id(self, webhook_id: str) -> Webhook | None: ...
    async def for_project(self, project_id: str) -> list[Webhook]: ...
    async def count(self, project_id: str) -> int: ...
    async def remove(self, project_id: str, webhook_id: str) -> bool:
        """Delete the webhook and its deliveries; False when the project has no such webhook."""


class WebhookDeliveryRepository(Protocol):
    async def enqueue(
        self, project_id: str, events: Sequence[tuple[WebhookEvent, Mapping[str, Any]]], now: datetime
    ) -> None:
        """One pending delivery per event and per webhook of the project that asks for it, in one statement
        (which may wait until the commit, like ``write_later``): nothing to read when no webhook matches."""

    async def get(self, webhook_id: str, delivery_id: str) -> Delivery | None: ...

    async def page(
        self, webhook_id: str, *, status: DeliveryStatus | None, limit: int, before: str | None
    ) -> list[Delivery]:
        """Newest first; ``before`` is the last id of the previous page."""

    async def any_due(self, now: datetime) -> bool:
        """Whether some delivery waits to be sent (a read, before claiming with a write)."""

    async def claim(self, now: datetime, lease: str, lease_until: datetime, limit: int) -> list[Delivery]:
        """Take up to ``limit`` due deliveries for one attempt each, marked with ``lease`` until ``lease_until``:
        no other claim gets them meanwhile, in this process or any other. Their ``attempts`` count it."""

    async def record(
        self,
        delivery_id: str,
        lease: str,
        outcome: Outcome,
        status: DeliveryStatus,
        next_attempt_at: datetime,
        now: datetime,
    ) -> bool:
        """Note the attempt made under ``lease``; False when the lease was lost (nothing changed)."""

    async def resend(self, webhook_id: str, delivery_id: str, now: datetime) -> bool:
        """Pending again, due ``now``; False when there is no such delivery."""

    async def forget_finished_before(self, moment: datetime) -> int:
        """Delete delivered and failed deliveries created before ``moment``."""


class Transaction(Protocol):
    """The repositories of one transaction."""

    @property
    def staff(self) -> StaffRepository: ...
    @property
    def projects(self) -> ProjectRepository: ...
    @property
    def end_users(self) -> EndUserRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def token_ids(self) -> TokenIdRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def conversations(self) -> ConversationRepository: ...
    @property
    def messages(self) -> MessageRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def webhooks(self) -> WebhookRepository: ...
    @property
    def webhook_deliveries(self) -> WebhookDeliveryRepository: ...


class Storage(Protocol):
    def read(self) -> AbstractAsyncContextManager[Transaction]:
        """Reads only; on PostgreSQL each statement is one round trip, without BEGIN/COMMIT."""

    def write(self) -> AbstractAsyncContextManager[Transaction]:
        """One transaction: committed when the block ends without error (the answer waits for it), else rolled back."""

    def rehearsal(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction that is always rolled back, never committed in part: a dry run of a use case.

        Its writes hold their locks until the block ends; nothing of it is stored
        or announced, and an error raised in the block propagates as from ``write()``.
        """

    async def ping(self) -> None:
        """Raise when the database cannot be reached."""

    async def start(self) -> None:
        """Open connections (inside the running event loop)."""

    async def close(self) -> None: ...


class RateCounter(Protocol):
    """Hits per (rule, key) in fixed windows, shared by every process and instance of the service.

    Adapters: Redis (``CHATGATE_REDIS_URL``), else the database's ``rate_counters`` table.
    """

    async def hit(self, rule: str, key: str, window_start: int, window_end: int) -> int:
        """Count one hit in the window ``[window_start, window_end)`` (epoch seconds), atomically, in a
        write of its own; the window's hits so far, this one included."""

    async def forget_finished(self, now: int) -> int:
        """Drop the counts of windows that ended before ``now``; how many went."""

    async def ping(self) -> None:
        """Raise when the counts cannot be reached."""

    async def close(self) -> None: ...


class WebhookSender(Protocol):
    """Sends one signed delivery over HTTPS; adapter: chatgate.webhook_sender (httpx).

    It resolves the host itself and refuses, without connecting, a name that
    resolves to a non-public address (unless the operator allows them).
    Never raises: every failure is an ``Outcome`` with an error.
    """

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome: ...
    async def close(self) -> None: ...


class EventFeed(Protocol):
    """Events committed by any process of the service, delivered to this one.

    Adapters: PostgreSQL ``LISTEN/NOTIFY`` (the notification is sent by the
    transaction that stores the event, so it arrives only once committed),
    and on SQLite a reader that follows the ``events`` table.
    """

    async def start(self, deliver: Callable[[Event], Awaitable[None]]) -> None: ...

    @property
    def connected(self) -> bool:
        """False while events from other processes may be missed (a lost listening connection)."""

    @property
    def epoch(self) -> int:
        """Changes whenever the feed (re)connects: hints sent while it was away are not read again, so
        what was cached before is no longer known to be fresh."""

    async def close(self) -> None: ...
