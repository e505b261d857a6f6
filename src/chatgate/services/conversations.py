"""Conversations and messages (contract §5): who may see, start, post and close.

An end user sees only their own conversations; another user's id answers
404, as an unknown one would. Staff of the project see and answer all of
them; the project's backend posts as ``bot`` or ``system`` with an API key
holding ``org.user``. A message is answered 201 only once committed, and
a sender's same ``client_id`` in a conversation always answers the first
message (another sender's ``client_id`` is theirs: it never answers with
someone else's message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from chatgate.domain.conversations import (
    MAX_TITLE_CHARS,
    Conversation,
    ConversationStatus,
    Event,
    EventType,
    Message,
    SenderType,
    Viewer,
    conversation_view,
    message_text,
    message_view,
)
from chatgate.domain.ids import looks_like_id, new_id
from chatgate.domain.models import ApiKey, SessionKind
from chatgate.errors import (
    ConversationLimitReached,
    ConversationNotFound,
    Forbidden,
    NotAuthenticated,
    ProjectNotFound,
    ValidationFailed,
)
from chatgate.services.context import Caller, ServiceContext
from chatgate.services.keys import live_api_key, note_key_use
from chatgate.services.ports import Transaction

MAX_PAGE = 200
BACKEND_ROLE = "org.user"


@dataclass(frozen=True)
class ConversationPage:
    conversations: list[Conversation]
    next_cursor: str | None


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    has_more: bool


@dataclass(frozen=True)
class Posted:
    message: Message
    created: bool  # False: the client_id was seen before, this is the first message again


@dataclass(frozen=True)
class Replay:
    last_seq: int  # the latest event of the server: resume after it
    events: list[Event]  # what the viewer missed, in order
    resync: bool  # not all of it is kept any more: fetch the conversations again


@dataclass(frozen=True)
class Author:
    """Who a new message is from, and what they may see."""

    sender_type: SenderType
    sender_id: str
    viewer: Viewer | None  # None for the project's backend, which sees every conversation
    api_key: ApiKey | None = None  # the backend's key, whose lastUsedAt a post moves


class ConversationService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def viewer(self, project_id: str, caller: Caller) -> Viewer:
        """What the caller's session may see of the project (404 when it is not theirs)."""
        async with self.ctx.storage.read() as tx:
            return await self._viewer(tx, project_id, caller)

    async def replay(self, viewer: Viewer, after_seq: int | None, limit: int) -> Replay:
        """For a socket that reconnects: the events it missed after ``after_seq`` (bounded)."""
        async with self.ctx.storage.read() as tx:
            last = await tx.events.last_seq()
            if after_seq is None:
                return Replay(last, [], False)
            oldest = await tx.events.oldest_seq()
            if after_seq > last or (oldest is not None and after_seq + 1 < oldest):
                return Replay(last, [], True)
            missed = await tx.events.since(viewer, after_seq, limit + 1)
        if len(missed) > limit:
            return Replay(last, [], True)
        return Replay(max(last, *(e.seq for e in missed)) if missed else last, missed, False)

    async def start(self, project_id: str, title: str | None, caller: Caller) -> Conversation:
        title = _title(title)
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            viewer = await self._viewer(tx, project_id, caller)
            if viewer.end_user_id is None:
                raise Forbidden("Conversations are started by end users; staff answer them.")
            held = await tx.conversations.count_for_user(viewer.end_user_id)
            if held >= self.ctx.settings.max_conversations_per_user:
                raise ConversationLimitReached()
            conversation = Conversation(
                new_id(), project_id, viewer.end_user_id, title, ConversationStatus.OPEN, now, now
            )
            await tx.conversations.add(conversation)
            # Stored with its webhook deliveries (the events webhooks ask for are enqueued with them).
            await tx.events.add(_conversation_event(EventType.CONVERSATION_CREATED, conversation))
        return conversation

    async def list(
        self,
        project_id: str,
        caller: Caller,
        *,
        user_id: str | None,
        status: ConversationStatus | None,
        updated_since: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> ConversationPage:
        limit = max(1, min(limit, MAX_PAGE))
        before = cursor if cursor and looks_like_id(cursor) else None
        async with self.ctx.storage.read() as tx:
            viewer = await self._viewer(tx, project_id, caller)
            if viewer.end_user_id is not None:
                user_id = viewer.end_user_id  # an end user's list is their own, whatever the filter says
            found = await tx.conversations.page(
                project_id, user_id=user_id, status=status, updated_since=updated_since, limit=limit + 1, before=before
            )
        more = len(found) > limit
        found = found[:limit]
        return ConversationPage(found, found[-1].id if more and found else None)

    async def get(self, project_id: str, conversation_id: str, caller: Caller) -> Conversation:
        async with self.ctx.storage.read() as tx:
            viewer = await self._viewer(tx, project_id, caller)
            return await _visible(tx, viewer, project_id, conversation_id)

    async def messages(
        self,
        project_id: str,
        conversation_id: str,
        caller: Caller,
        *,
        after: str | None,
        before: str | None,
        limit: int,
    ) -> MessagePage:
        limit = max(1, min(limit, MAX_PAGE))
        async with self.ctx.storage.read() as tx:
            viewer = await self._viewer(tx, project_id, caller)
            await _visible(tx, viewer, project_id, conversation_id)
            found = await tx.messages.page(
                conversation_id,
                after=after if after and looks_like_id(after) else None,
                before=before if before and looks_like_id(before) else None,
                limit=limit + 1,
            )
        if before and not after:  # read backwards: the extra row is the oldest one
            return MessagePage(found[-limit:], len(found) > limit)
        return MessagePage(found[:limit], len(found) > limit)

    async def post(
        self, project_id: str, conversation_id: str, text: str, client_id: str | None, caller: Caller
    ) -> Posted:
        """A message from the signed-in end user (``user``) or staff member (``agent``)."""

        async def as_caller(tx: Transaction) -> Author:
            viewer = await self._viewer(tx, project_id, caller)
            if viewer.end_user_id is not None:
                return Author(SenderType.USER, viewer.end_user_id, viewer)
            return Author(SenderType.AGENT, _subject(caller), viewer)

        return await self._post(project_id, conversation_id, _text(text), client_id, as_caller)

    async def post_from_backend(
        self,
        project_id: str,
        conversation_id: str,
        text: str,
        client_id: str | None,
        sender_type: SenderType,
        api_key: str,
    ) -> Posted:
        """A message from the project's backend, as ``bot`` or ``system``, with an ``org.user`` API key."""
        if sender_type not in (SenderType.BOT, SenderType.SYSTEM):
            raise ValidationFailed({"sender_type": "must be bot or system"})

        async def as_backend(tx: Transaction) -> Author:
            key = await live_api_key(tx, api_key, self.ctx.clock())
            if key.project_id != project_id:
                raise ProjectNotFound()
            if BACKEND_ROLE not in key.roles:
                raise Forbidden("This API key needs the org.user role to post.")
            return Author(sender_type, key.id, None, key)

        return await self._post(project_id, conversation_id, _text(text), client_id, as_backend)

    async def set_status(
        self, project_id: str, conversation_id: str, status: ConversationStatus, caller: Caller
    ) -> Conversation:
        """Staff close and reopen conversations."""
        now = self.ctx.clock()
        async with self.ctx.storage.write() as tx:
            viewer = await self._viewer(tx, project_id, caller)
            conversation = await _visible(tx, viewer, project_id, conversation_id)
            if viewer.end_user_id is not None:
                raise Forbidden("Only the project's staff close and reopen conversations.")
            if conversation.status is status:
                return conversation
            await tx.conversations.set_status(conversation.id, status, now)
            changed = replace(conversation, status=status, updated_at=now)
            await tx.events.add(_conversation_event(EventType.CONVERSATION_UPDATED, changed))
        return changed

    # -- inside ------------------------------------------------------------

    async def _post(
        self,
        project_id: str,
        conversation_id: str,
        text: str,
        client_id: str | None,
        identify: Callable[[Transaction], Awaitable[Author]],
    ) -> Posted:
        """Who posts, and whether this is a resend (answered with the first message, not counted
        again); then the message is stored."""
        async with self.ctx.storage.read() as tx:
            author = await identify(tx)
            first = await tx.messages.by_client_id(conversation_id, author.sender_id, client_id) if client_id else None
        posted = (
            Posted(first, False) if first else await self._store(author, project_id, conversation_id, text, client_id)
        )
        await note_key_use(self.ctx, author.api_key)
        return posted

    async def _store(
        self, author: Author, project_id: str, conversation_id: str, text: str, client_id: str | None
    ) -> Posted:
        """Usually one statement: the message stored if its conversation is open and the author's to
        post in. Anything else (a closed conversation the user reopens by writing, an unknown or
        foreign one, a client_id resent at this very moment) is decided after a read."""
        await self.ctx.limiter.hit("message_sender", author.sender_id)
        now = self.ctx.clock()
        message = Message(
            new_id(), conversation_id, project_id, author.sender_type, author.sender_id, text, client_id, now
        )
        announced = Event(
            EventType.MESSAGE_CREATED, project_id, {"conversationId": conversation_id, "message": message_view(message)}
        )
        viewer = author.viewer
        by_user = author.sender_type is SenderType.USER
        owner = viewer.end_user_id if viewer is not None else None
        async with self.ctx.storage.write() as tx:
            if looks_like_id(conversation_id) and await tx.messages.post(
                message, announced, open_only=by_user, owner_id=owner
            ):
                return Posted(message, True)
        async with self.ctx.storage.write() as tx:
            conversation = await _visible(tx, viewer, project_id, conversation_id)
            if conversation.status is ConversationStatus.CLOSED and by_user:
                # The user writing again reopens what staff closed.
                await tx.conversations.set_status(conversation.id, ConversationStatus.OPEN, now)
                reopened = replace(conversation, status=ConversationStatus.OPEN, updated_at=now)
                await tx.events.add(_conversation_event(EventType.CONVERSATION_UPDATED, reopened))
            if await tx.messages.post(message, announced) is None:
                # The same client_id at this very moment (a retry racing the first): answer the first.
                assert client_id is not None
                first = await tx.messages.by_client_id(conversation_id, author.sender_id, client_id)
                assert first is not None
                return Posted(first, False)
        return Posted(message, True)

    async def _viewer(self, tx: Transaction, project_id: str, caller: Caller) -> Viewer:
        principal = caller.principal
        if principal is None:
            raise NotAuthenticated()
        if principal.kind is SessionKind.END_USER:
            if principal.project_id != project_id:
                raise ProjectNotFound()
            return Viewer(project_id, principal.session_id, principal.subject_id)
        member = looks_like_id(project_id) and await tx.projects.membership(project_id, principal.subject_id)
        if not member:
            raise ProjectNotFound()
        return Viewer(project_id, principal.session_id, None, principal.subject_id)


async def _visible(tx: Transaction, viewer: Viewer | None, project_id: str, conversation_id: str) -> Conversation:
    """The conversation, if the viewer may see it: another user's answers 404 as an unknown one does."""
    conversation = await tx.conversations.get(project_id, conversation_id) if looks_like_id(conversation_id) else None
    if conversation is None or (
        viewer is not None and viewer.end_user_id is not None and conversation.user_id != viewer.end_user_id
    ):
        raise ConversationNotFound()
    return conversation


def _conversation_event(kind: EventType, conversation: Conversation) -> Event:
    return Event(
        kind,
        conversation.project_id,
        {"conversationId": conversation.id, "conversation": conversation_view(conversation)},
        user_id=conversation.user_id,
    )


def _text(raw: str) -> str:
    text = message_text(raw)
    if text is None:
        raise ValidationFailed({"text": "must be 1 to 10,000 characters (spaces at either end do not count)"})
    return text


def _title(raw: str | None) -> str | None:
    if raw is None:
        return None
    title = raw.strip()
    if len(title) > MAX_TITLE_CHARS:
        raise ValidationFailed({"title": f"must be at most {MAX_TITLE_CHARS} characters"})
    return title or None


def _subject(caller: Caller) -> str:
    assert caller.principal is not None
    return caller.principal.subject_id
