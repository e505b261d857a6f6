"""Conversations, messages and the events that tell every device about them.

An end user owns conversations; the project's staff see all of them. A
message's ``sender`` says who wrote it: the owner (``user``), a staff member
(``agent``) or the project's backend through an API key (``bot``, ``system``).

Every change someone else should see live is an ``Event``, stored in the
same transaction as the change. Its ``seq`` grows with every event of the
server; a principal sees a subset of them, still in increasing order, and
resumes after the last one it saw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_TEXT_CHARS = 10_000
MAX_TITLE_CHARS = 200
MAX_CLIENT_ID_CHARS = 64


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class SenderType(enum.StrEnum):
    USER = "user"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


@dataclass(frozen=True)
class Conversation:
    id: str
    project_id: str
    user_id: str
    title: str | None
    status: ConversationStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    project_id: str
    sender_type: SenderType
    sender_id: str
    text: str
    client_id: str | None
    created_at: datetime


class EventType(enum.StrEnum):
    MESSAGE_CREATED = "message.created"
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_MERGED = "conversation.merged"
    SESSION_REVOKED = "session.revoked"
    # For the servers themselves, never sent to a socket as a frame: forget a cached project; close
    # the sockets of a staff member who was removed from the project; forget a cached end user.
    PROJECT_CHANGED = "project.changed"
    MEMBER_REMOVED = "member.removed"
    USER_CHANGED = "user.changed"


INTERNAL_EVENTS = frozenset({EventType.PROJECT_CHANGED, EventType.MEMBER_REMOVED, EventType.USER_CHANGED})
# A hint is an event that is not stored and has no seq: only this process's caches and the listening
# processes hear of it (services/caches.py).
HINT_SEQ = 0


@dataclass(frozen=True)
class Event:
    """Something to push to the devices allowed to see it.

    ``user_id``: the end user it concerns (their devices see it; so do the
    project's staff). ``session_id``: only that session's sockets see it.
    A ``session.revoked`` names one session, or with ``user_id`` alone every
    session of that user; a staff session's end names no project.
    """

    type: EventType
    project_id: str | None
    payload: dict[str, Any]
    user_id: str | None = None
    session_id: str | None = None
    seq: int = 0

    @property
    def internal(self) -> bool:
        return self.type in INTERNAL_EVENTS

    def numbered(self, seq: int) -> Event:
        return Event(self.type, self.project_id, self.payload, self.user_id, self.session_id, seq)


@dataclass(frozen=True)
class Viewer:
    """Who holds a socket: an end user (their own conversations) or a staff member (the project's)."""

    project_id: str
    session_id: str
    end_user_id: str | None  # None for staff
    staff_id: str | None = None  # None for end users

    def loses_access(self, event: Event) -> bool:
        """A staff member removed from the project: their sockets there close at once."""
        return (
            event.type is EventType.MEMBER_REMOVED
            and event.project_id == self.project_id
            and self.staff_id is not None
            and event.payload.get("staff_id") == self.staff_id
        )

    def sees(self, event: Event) -> bool:
        if event.type is EventType.SESSION_REVOKED:
            if event.session_id is not None:
                return event.session_id == self.session_id
            return self.end_user_id is not None and event.user_id == self.end_user_id
        if event.project_id != self.project_id or event.internal:
            return False
        if event.session_id is not None:
            return event.session_id == self.session_id
        return self.end_user_id is None or event.user_id == self.end_user_id


def message_text(raw: str) -> str | None:
    """The text to store, or None when it is empty after trimming or longer than MAX_TEXT_CHARS."""
    text = raw.strip()
    if not text or len(text) > MAX_TEXT_CHARS:
        return None
    return text


def conversation_view(c: Conversation) -> dict[str, Any]:
    """A conversation as the API and the events show it."""
    return {
        "id": c.id,
        "title": c.title,
        "userId": c.user_id,
        "status": c.status.value,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.updated_at),
    }


def message_view(m: Message) -> dict[str, Any]:
    """A message as the API and the events show it."""
    return {
        "id": m.id,
        "conversationId": m.conversation_id,
        "sender": {"type": m.sender_type.value, "id": m.sender_id},
        "text": m.text,
        "clientId": m.client_id,
        "createdAt": iso(m.created_at),
    }


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
