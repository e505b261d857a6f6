"""``GET /v1/projects/{pid}/ws``: the events a session may see, live, resumable by ``seq``.

The session token comes as ``?token=`` or, to keep it out of proxy logs, as
the first frame ``{"type": "auth", "token": "..."}``. Then the server sends
``{"type": "ready", "seq": n}``, the missed events when ``?after_seq=`` was
given (or ``{"type": "resync"}`` when they are no longer all kept: fetch the
conversations again), and every new event as it commits.

Close codes: 4401 not authenticated, 4404 unknown project (or not yours),
4001 the session was signed out or revoked, 4002 the session expired, 4008
the client read too slowly, 1013 the database is unavailable (try again
later). Protocol pings (CHATGATE_WS_PING_SECONDS) drop dead peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatgate.domain.conversations import Event, EventType, Viewer
from chatgate.errors import DomainError, NotAuthenticated, StorageUnavailable
from chatgate.services.bundle import Services
from chatgate.services.context import Caller

AUTH_WAIT_SECONDS = 10
REPLAY_LIMIT = 1000
# Events waiting for a client that does not read; past this the socket is dropped, not buffered.
QUEUE_LIMIT = 256
# A client that reads nothing cannot take a close frame either: give up on it after this.
CLOSE_WAIT_SECONDS = 10

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_REVOKED = 4001
CLOSE_EXPIRED = 4002
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_AGAIN = 1013


class LiveSocket:
    """One connected device: a bounded queue of frames, sent in order by one task."""

    def __init__(self, websocket: WebSocket, viewer: Viewer) -> None:
        self.websocket = websocket
        self._viewer = viewer
        self.frames: asyncio.Queue[Event | dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.too_slow = asyncio.Event()
        self.after_seq = 0  # events at or below this were already sent by the replay
        self._early: list[Event] | None = []  # what came between subscribing and ``ready``

    def go_live(self, after_seq: int) -> None:
        """From ``ready`` on: events above ``after_seq``, those that came meanwhile first."""
        self.after_seq = after_seq
        early, self._early = self._early or [], None
        for event in early:
            self.push(event)

    @property
    def viewer(self) -> Viewer:
        return self._viewer

    def push(self, event: Event) -> None:
        if self._early is not None:  # before ``ready``: which events are the past is not known yet
            self._early.append(event)
            return
        if event.seq <= self.after_seq:  # the past: replayed, or for the client to fetch
            return
        try:
            self.frames.put_nowait(event)
        except asyncio.QueueFull:
            self.too_slow.set()

    async def send_frames(self) -> tuple[int, str]:
        """Send until the session ends; the close code and reason."""
        while True:
            frame = await self.frames.get()
            if isinstance(frame, dict):  # an answer to the client (a pong)
                await self._send(frame)
                continue
            if frame.seq <= self.after_seq:
                continue
            if frame.type is EventType.MEMBER_REMOVED:  # no frame: the project is no longer theirs
                return CLOSE_NOT_FOUND, "removed from the project"
            await self._send(event_frame(frame))
            if frame.type is EventType.SESSION_REVOKED:
                return CLOSE_REVOKED, "session revoked"

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.websocket.send_text(orjson.dumps(frame).decode())


def event_frame(event: Event) -> dict[str, Any]:
    return {"type": event.type.value, "seq": event.seq, **event.payload}


def live_route(services: Services) -> WebSocketRoute:
    hub = services.ctx.live

    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            code, reason = await _session(websocket)
        except WebSocketDisconnect:
            return
        except DomainError as refusal:
            code = CLOSE_NOT_AUTHENTICATED if refusal.status == 401 else CLOSE_NOT_FOUND
            reason = refusal.message
        except StorageUnavailable:
            code, reason = CLOSE_TRY_AGAIN, "the database is unavailable; reconnect later"
        with contextlib.suppress(Exception):  # the client may be gone already, or not reading
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                await websocket.close(code, reason[:120])

    async def _session(websocket: WebSocket) -> tuple[int, str]:
        viewer, expires_at = await _open(services, websocket)
        socket = LiveSocket(websocket, viewer)
        hub.subscribe(socket)
        try:
            await _replay(services, websocket, socket)
            return await _serve(socket, expires_at)
        finally:
            hub.unsubscribe(socket)

    return WebSocketRoute("/v1/projects/{pid}/ws", live)


async def _open(services: Services, websocket: WebSocket) -> tuple[Viewer, float]:
    """Authenticate the socket: its viewer and when its session expires (refusals raise)."""
    query_token = websocket.query_params.get("token")
    token = _bare(query_token) if query_token else await _auth_frame(websocket)
    claims = services.sessions.peek(token) if token else None
    if token is None or claims is None:
        raise NotAuthenticated()
    principal = await services.sessions.authenticate(token)
    ip = websocket.client.host if websocket.client else "unknown"
    viewer = await services.conversations.viewer(websocket.path_params["pid"], Caller(ip, principal))
    return viewer, float(claims["exp"])  # type: ignore[arg-type]


async def _auth_frame(websocket: WebSocket) -> str | None:
    try:
        async with asyncio.timeout(AUTH_WAIT_SECONDS):
            frame = orjson.loads(await websocket.receive_text())
    except (TimeoutError, orjson.JSONDecodeError, KeyError, WebSocketDisconnect):
        return None
    if isinstance(frame, dict) and frame.get("type") == "auth" and isinstance(frame.get("token"), str):
        return _bare(frame["token"])
    return None


def _bare(token: str) -> str:
    """A session token as login answers give it (``JWT <token>``), or bare."""
    scheme, _, bare = token.strip().partition(" ")
    return bare.strip() if bare and scheme.lower() in ("jwt", "bearer") else token.strip()


async def _replay(services: Services, websocket: WebSocket, socket: LiveSocket) -> None:
    """``ready`` with the latest seq, then what the client missed since ``after_seq``, if it is all kept."""
    raw = websocket.query_params.get("after_seq")
    after = int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None
    replay = await services.conversations.replay(socket.viewer, after, REPLAY_LIMIT)
    # Everything up to ``ready``'s seq is the past: replayed below, or in what the client fetches after a
    # resync or a fresh start. A copy the feed brings late (committed just before this socket opened) is
    # not sent again, so seqs only grow after ``ready``.
    # (Not the client's after_seq: one from the future is answered resync and must not mute the socket.)
    socket.go_live(max([replay.last_seq, *(e.seq for e in replay.events)]))
    await websocket.send_text(orjson.dumps({"type": "ready", "seq": replay.last_seq}).decode())
    if replay.resync:
        await websocket.send_text(orjson.dumps({"type": "resync", "seq": replay.last_seq}).decode())
    for event in replay.events:
        await websocket.send_text(orjson.dumps(event_frame(event)).decode())


async def _serve(socket: LiveSocket, expires_at: float) -> tuple[int, str]:
    """Send events and answer pings until the session ends, the client leaves or reads too slowly."""
    sending = asyncio.create_task(socket.send_frames())
    reading = asyncio.create_task(_read(socket))
    slow = asyncio.create_task(socket.too_slow.wait())
    try:
        done, _ = await asyncio.wait(
            {sending, reading, slow}, timeout=max(0.0, expires_at - time.time()), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (sending, reading, slow):
            task.cancel()
    if not done:
        return CLOSE_EXPIRED, "session expired"
    if slow in done:
        return CLOSE_TOO_SLOW, "too slow: events were not read"
    if reading in done:
        reading.result()  # a disconnect propagates
    return sending.result()


async def _read(socket: LiveSocket) -> None:
    """Client frames: ``{"type": "ping"}`` is answered with a pong; others are ignored."""
    while True:
        message = await socket.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            frame = orjson.loads(message.get("text") or "null")
        except orjson.JSONDecodeError:
            continue
        if isinstance(frame, dict) and frame.get("type") == "ping" and not socket.frames.full():
            socket.frames.put_nowait({"type": "pong"})
