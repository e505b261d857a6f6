"""WebSocket heartbeats: a peer that stops answering pings is dropped; one that answers stays."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from async_tools import run_async
from conftest import Server, make_project, sign_up_staff, start_server

PING_SECONDS = 1


@pytest.fixture(scope="module")
def pinging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("heartbeat"), None, extra_env={"CHATGATE_WS_PING_SECONDS": str(PING_SECONDS)}
    )
    try:
        yield server
    finally:
        server.stop()


def visitor_socket_path(server: Server) -> str:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        project = make_project(api, sign_up_staff(api), {"auth_methods": {"anonymous": True}})
        token = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()["token"]
    return f"/v1/projects/{project.id}/ws?token={token.split()[1]}"


def test_a_peer_that_never_answers_pings_is_disconnected(pinging_server: Server) -> None:
    path = visitor_socket_path(pinging_server)
    address = urlsplit(pinging_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        started = time.monotonic()
        # Read what the server sends (the 101, "ready", pings) and never answer: the server must hang up.
        while True:
            chunk = raw.recv(65536)
            if not chunk:
                break
            received += chunk
            assert time.monotonic() - started < 8 * PING_SECONDS, "a silent peer was kept"
        assert received.startswith(b"HTTP/1.1 101"), received[:200]
        assert b'"type":"ready"' in received


def test_a_peer_that_answers_pings_stays_connected(pinging_server: Server) -> None:
    url = pinging_server.url.replace("http://", "ws://") + visitor_socket_path(pinging_server)

    async def scenario() -> None:
        async with connect(url) as ws:  # the client library answers pings itself
            assert '"ready"' in str(await asyncio.wait_for(ws.recv(), 5))
            await asyncio.sleep(4 * PING_SECONDS)
            await ws.send('{"type": "ping"}')
            assert '"pong"' in str(await asyncio.wait_for(ws.recv(), 5))

    run_async(scenario())
