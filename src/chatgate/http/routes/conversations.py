"""Conversations and messages over REST (contract §5)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from chatgate.crypto.secrets import api_key_prefix
from chatgate.domain.conversations import ConversationStatus, SenderType, conversation_view, message_view
from chatgate.domain.ids import looks_like_id
from chatgate.errors import ValidationFailed
from chatgate.http.requests import authorization_token, json, parse_body, query_int, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import (
    ConversationChange,
    ConversationCreate,
    ConversationListOut,
    ConversationOut,
    MessageCreate,
    MessageListOut,
    MessageOut,
)
from chatgate.services.bundle import Services

BASE = "/v1/projects/{pid}/conversations"
# Sorts after every id: "the page before it" is the newest page (``?latest=true``).
AFTER_EVERY_ID = "f" * 24


def endpoints(services: Services) -> list[Endpoint]:
    conversations = services.conversations

    async def start_conversation(request: Request) -> Response:
        body = await parse_body(request, ConversationCreate)
        caller = await session_caller(services, request)
        conversation = await conversations.start(request.path_params["pid"], body.title, caller)
        return json(conversation_view(conversation), 201)

    async def list_conversations(request: Request) -> Response:
        limit = query_int(request, "limit", 1, 200, 50)
        status = _status(request.query_params.get("status"))
        since = _moment(request.query_params.get("updated_since"))
        caller = await session_caller(services, request)
        page = await conversations.list(
            request.path_params["pid"],
            caller,
            user_id=_id_param(request, "user_id"),
            status=status,
            updated_since=since,
            limit=limit,
            cursor=_id_param(request, "cursor"),
        )
        return json(
            {"conversations": [conversation_view(c) for c in page.conversations], "next_cursor": page.next_cursor}
        )

    async def get_conversation(request: Request) -> Response:
        caller = await session_caller(services, request)
        conversation = await conversations.get(request.path_params["pid"], request.path_params["cid"], caller)
        return json(conversation_view(conversation))

    async def change_conversation(request: Request) -> Response:
        body = await parse_body(request, ConversationChange)
        caller = await session_caller(services, request)
        conversation = await conversations.set_status(
            request.path_params["pid"], request.path_params["cid"], ConversationStatus(body.status), caller
        )
        return json(conversation_view(conversation))

    async def post_message(request: Request) -> Response:
        body = await parse_body(request, MessageCreate)
        pid, cid = request.path_params["pid"], request.path_params["cid"]
        presented = authorization_token(request, ("bearer",))
        if presented is not None and api_key_prefix(presented) is not None:
            posted = await conversations.post_from_backend(
                pid, cid, body.text, body.client_id, SenderType(body.sender_type or "bot"), presented
            )
        else:
            if body.sender_type is not None:
                raise ValidationFailed({"sender_type": "only the project's backend (an API key) chooses its sender"})
            caller = await session_caller(services, request)
            posted = await conversations.post(pid, cid, body.text, body.client_id, caller)
        response = json(message_view(posted.message), 201)
        if not posted.created:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    async def list_messages(request: Request) -> Response:
        limit = query_int(request, "limit", 1, 200, 50)
        caller = await session_caller(services, request)
        page = await conversations.messages(
            request.path_params["pid"],
            request.path_params["cid"],
            caller,
            after=_id_param(request, "after"),
            before=AFTER_EVERY_ID if request.query_params.get("latest") == "true" else _id_param(request, "before"),
            limit=limit,
        )
        return json({"messages": [message_view(m) for m in page.messages], "has_more": page.has_more})

    seen = (401, 404, 422)
    return [
        Endpoint(
            "POST",
            BASE,
            start_conversation,
            "Start a conversation (end user)",
            "conversations",
            body=ConversationCreate,
            response=ConversationOut,
            status=201,
            auth="session",
            errors=(403, 404, 422),
        ),
        Endpoint(
            "GET",
            BASE,
            list_conversations,
            "Conversations, newest first: an end user's own, or all of the project's for staff",
            "conversations",
            response=ConversationListOut,
            auth="session",
            errors=seen,
            query=(
                ("user_id", "staff: only this end user's (_id)"),
                ("status", "open or closed"),
                ("updated_since", "ISO 8601 time: only conversations changed since"),
                ("limit", "1-200, default 50"),
                ("cursor", "next_cursor of the previous page"),
            ),
        ),
        Endpoint(
            "GET",
            BASE + "/{cid}",
            get_conversation,
            "One conversation",
            "conversations",
            response=ConversationOut,
            auth="session",
            errors=seen,
        ),
        Endpoint(
            "PATCH",
            BASE + "/{cid}",
            change_conversation,
            "Close or reopen a conversation (staff)",
            "conversations",
            body=ConversationChange,
            response=ConversationOut,
            auth="session",
            errors=(400, 403, 404, 422),
        ),
        Endpoint(
            "POST",
            BASE + "/{cid}/messages",
            post_message,
            "Post a message: the end user (user), staff (agent), or an org.user API key (bot or system)",
            "conversations",
            body=MessageCreate,
            response=MessageOut,
            status=201,
            auth="session",
            errors=(400, 403, 404, 422, 429),
        ),
        Endpoint(
            "GET",
            BASE + "/{cid}/messages",
            list_messages,
            "Messages, oldest first: after a message id, or the page before one",
            "conversations",
            response=MessageListOut,
            auth="session",
            errors=seen,
            query=(
                ("after", "a message id: the messages after it"),
                ("before", "a message id: the messages just before it (for scrolling back)"),
                ("latest", "true: the newest messages (a chat opening on its last page)"),
                ("limit", "1-200, default 50"),
            ),
        ),
    ]


def _id_param(request: Request, name: str) -> str | None:
    """An id given as a query parameter (a cursor, a message id); malformed is 422, not ignored."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if not looks_like_id(raw):
        raise ValidationFailed({name: "must be an id as the API gives them (24 hexadecimal characters)"})
    return raw


def _status(raw: str | None) -> ConversationStatus | None:
    if raw is None or raw == "":
        return None
    try:
        return ConversationStatus(raw)
    except ValueError:
        raise ValidationFailed({"status": "must be open or closed"}) from None


def _moment(raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one that leaves the calendar in UTC
        raise ValidationFailed({"updated_since": "must be an ISO 8601 time, e.g. 2026-11-29T08:00:00Z"}) from None
