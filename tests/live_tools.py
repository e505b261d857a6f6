"""Shared by the conversation tests: personas, conversations, live sockets and dedicated servers.

Sockets are real WebSockets (the ``websockets`` client) to a real server; every
wait has a timeout, so a frame that never comes fails the test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import chatgate
from async_tools import run_async
from conftest import POSTGRES_URL, ROOT, Project, Server
from doors import descendants, owner_of
from jwt_tools import hs256, now

# The servers run ``python -m chatgate`` with this process's environment: the code under test is the
# one imported here, which must be this checkout's (PYTHONPATH=src from its root), not an installed copy.
if not Path(chatgate.__file__).resolve().is_relative_to(ROOT / "src"):
    raise RuntimeError(f"chatgate is imported from {chatgate.__file__}, not {ROOT / 'src'}: run with PYTHONPATH=src")

# The longest a test waits for something that must happen.
WAIT = 5.0
# How long a socket is watched to show that nothing arrives.
QUIET = 0.4
# "At once" across processes, as the contract promises it (logout closes sockets within 1 s).
WITHIN = 1.0


# -- personas -----------------------------------------------------------------


@dataclass
class EndUser:
    id: str
    token: str  # "JWT <token>", as the login answered it

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.token}

    @property
    def bare(self) -> str:
        """The token without its scheme, as ``?token=`` and ``anonymous_token`` take it."""
        return self.token.removeprefix("JWT ")


def customer(api: httpx.Client, project: Project, external_id: str | None = None) -> EndUser:
    """An identified end user (Kustomer-style login); the same ``external_id`` again is another session."""
    claims = {"externalId": external_id or f"cust-{secrets.token_hex(4)}", "iat": now()}
    r = api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": hs256(project.secret, claims)})
    assert r.status_code == 200, r.text
    return EndUser(r.json()["user"]["_id"], r.json()["token"])


def visitor(api: httpx.Client, project_id: str) -> EndUser:
    r = api.post("/v1/auth/signinAnonymously", json={"id_project": project_id})
    assert r.status_code == 200, r.text
    return EndUser(r.json()["user"]["_id"], r.json()["token"])


def conversations_path(project_id: str, conversation_id: str | None = None) -> str:
    base = f"/v1/projects/{project_id}/conversations"
    return base if conversation_id is None else f"{base}/{conversation_id}"


def start(api: httpx.Client, project_id: str, auth: dict[str, str], title: str | None = None) -> dict[str, Any]:
    r = api.post(conversations_path(project_id), json={} if title is None else {"title": title}, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def say(api: httpx.Client, project_id: str, cid: str, auth: dict[str, str], text_: str, **extra: Any) -> dict[str, Any]:
    r = api.post(f"{conversations_path(project_id, cid)}/messages", json={"text": text_, **extra}, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def messages(api: httpx.Client, project_id: str, cid: str, auth: dict[str, str], **query: Any) -> dict[str, Any]:
    r = api.get(f"{conversations_path(project_id, cid)}/messages", params=query, headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def listing(api: httpx.Client, project_id: str, auth: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    r = api.get(conversations_path(project_id), params=query, headers=auth)
    assert r.status_code == 200, r.text
    return list(r.json()["conversations"])


def api_key(api: httpx.Client, project: Project, roles: list[str]) -> str:
    r = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "backend", "roles": roles, "expires_in_days": None},
        headers=project.owner.auth,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


# -- sockets ------------------------------------------------------------------


def ws_url(base_url: str, project_id: str, token: str | None = None, after_seq: int | None = None) -> str:
    query: dict[str, Any] = {}
    if token is not None:
        query["token"] = token
    if after_seq is not None:
        query["after_seq"] = after_seq
    address = base_url.replace("http://", "ws://", 1) + f"/v1/projects/{project_id}/ws"
    return address + ("?" + urlencode(query) if query else "")


@dataclass
class Live:
    """One open socket past its ``ready`` frame."""

    ws: ClientConnection
    ready: dict[str, Any]
    name: str = ""
    seqs: list[int] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else int(self.ready["seq"])

    async def frame(self, wait: float = WAIT) -> dict[str, Any]:
        """The next frame (must come within ``wait`` seconds)."""
        try:
            async with asyncio.timeout(wait):
                raw = await self.ws.recv()
        except TimeoutError:
            raise AssertionError(f"{self.name or 'socket'}: no frame within {wait} s") from None
        except ConnectionClosed as closed:
            raise AssertionError(f"{self.name or 'socket'}: closed ({closed.rcvd}) while a frame was awaited") from None
        frame = json.loads(raw)
        assert isinstance(frame, dict), frame
        if "seq" in frame and frame["type"] not in ("ready", "resync"):
            self.seqs.append(int(frame["seq"]))
        return frame

    async def expect(self, kind: str, wait: float = WAIT) -> dict[str, Any]:
        """The next frame, which must be of type ``kind``."""
        frame = await self.frame(wait)
        assert frame["type"] == kind, f"{self.name}: expected {kind}, got {frame}"
        return frame

    async def silent(self, within: float = QUIET) -> None:
        """Nothing arrives within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                raw = await self.ws.recv()
        except TimeoutError:
            return
        except ConnectionClosed as closed:
            raise AssertionError(f"{self.name}: closed ({closed.rcvd}) where it should have stayed open") from None
        raise AssertionError(f"{self.name}: should have received nothing, got {raw}")

    async def ping(self) -> None:
        """The socket is open and answering: a ping gets its pong next."""
        await self.ws.send(json.dumps({"type": "ping"}))
        assert (await self.frame())["type"] == "pong"

    async def closed(self, wait: float = WAIT) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes: its close code, and the frames that came before."""
        return await close_of(self.ws, wait)

    async def close(self) -> None:
        await self.ws.close()


async def close_of(ws: ClientConnection, wait: float = WAIT) -> tuple[int | None, list[dict[str, Any]]]:
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(wait):
            while True:
                frames.append(json.loads(await ws.recv()))
    except TimeoutError:
        raise AssertionError(f"still open after {wait} s; frames {frames}") from None
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


async def open_live(
    base_url: str,
    project_id: str,
    token: str,
    *,
    after_seq: int | None = None,
    by_frame: bool = False,
    name: str = "",
) -> Live:
    """A socket that has authenticated and received ``ready`` (``token`` as given by a login, "JWT ...")."""
    bare = token.removeprefix("JWT ")
    url = ws_url(base_url, project_id, None if by_frame else bare, after_seq)
    ws = await connect(url, open_timeout=WAIT, close_timeout=1)
    if by_frame:
        await ws.send(json.dumps({"type": "auth", "token": token}))
    live = Live(ws, {}, name)
    try:
        live.ready = await live.expect("ready")
    except BaseException:
        await ws.close()
        raise
    assert isinstance(live.ready["seq"], int), live.ready
    return live


async def refusal(url: str, first_frame: dict[str, Any] | str | None = None, wait: float = WAIT) -> int | None:
    """The close code of a socket the server turns away (it accepts, then closes)."""
    async with connect(url, open_timeout=WAIT, close_timeout=1) as ws:
        if first_frame is not None:
            await ws.send(first_frame if isinstance(first_frame, str) else json.dumps(first_frame))
        code, frames = await close_of(ws, wait)
        assert frames == [], f"a refused socket was sent {frames}"
        return code


def socket_worker(ws: ClientConnection, server: Server) -> int | None:
    """The worker process of ``server`` holding the server side of this socket."""
    client_port = int(ws.local_address[1])
    return owner_of(server.port, client_port, descendants(server.process.pid))


async def open_live_on(server: Server, worker: int, project_id: str, token: str, name: str = "") -> Live:
    """A socket held by one chosen worker process: sockets are opened until that worker accepts one."""
    for _ in range(60):
        live = await open_live(server.url, project_id, token, name=name)
        if socket_worker(live.ws, server) == worker:
            return live
        await live.close()
    raise AssertionError(f"no socket reached worker {worker} in 60 attempts")


def run(coroutine: Any) -> Any:
    """Run a test's async scenario on a fresh loop, in a thread of its own (the browser tests keep a loop
    running in the main thread)."""
    return run_async(coroutine)


# -- dedicated servers ----------------------------------------------------------


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A PostgreSQL database of the caller's own, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("needs CHATGATE_TEST_POSTGRES_URL")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"chatgate_conv_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def kill_server(server: Server) -> None:
    """SIGKILL ``chatgate serve`` and every process under it: no shutdown, no flush, nothing."""
    pids = [server.process.pid, *descendants(server.process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.engine.dispose()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def insert_events(db: Any, project_id: str, user_id: str, conversation_id: str, count: int, size: int = 100) -> None:
    """``count`` message.created events for ``user_id``, written straight into the event log.

    Thousands of events through the API would take minutes; written here they are
    what the server itself writes (on PostgreSQL with the NOTIFY it sends at commit),
    so every process delivers them as if they had been posted.
    """
    message = {
        "id": "f" * 24,
        "conversationId": conversation_id,
        "sender": {"type": "bot", "id": "e" * 24},
        "text": "x" * size,
        "clientId": None,
        "createdAt": "2026-11-29T00:00:00.000Z",
    }
    payload = json.dumps({"conversationId": conversation_id, "message": message})
    params = {"p": project_id, "u": user_id, "payload": payload, "n": count}
    if db.engine.dialect.name == "postgresql":
        note = json.dumps(
            {
                "type": "message.created",
                "project_id": project_id,
                "user_id": user_id,
                "session_id": None,
                "payload": json.loads(payload),
            }
        )
        assert len(note) <= 7000
        sql = (
            "WITH e AS (INSERT INTO events (project_id, type, user_id, session_id, payload, created_at)"
            " SELECT :p, 'message.created', :u, NULL, CAST(:payload AS JSON), now()"
            " FROM generate_series(1, :n) ORDER BY 1 RETURNING seq)"
            " SELECT count(pg_notify('chatgate_events', e.seq::text || ' ' || :note)) FROM"
            " (SELECT seq FROM e ORDER BY seq) AS e"
        )
        params["note"] = note
    else:
        sql = (
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :n)"
            " INSERT INTO events (project_id, type, user_id, session_id, payload, created_at)"
            " SELECT :p, 'message.created', :u, NULL, :payload, :at FROM n"
        )
        params["at"] = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    with db.engine.begin() as conn:  # committed: the NOTIFYs go out now
        conn.execute(text(sql), params)
