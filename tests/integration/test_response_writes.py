"""How Chatgate's HTTP protocol writes responses, with handlers Chatgate does not have yet.

The protocol (``BoundedHttpToolsProtocol``) holds a response's head until its
body's first bytes, to send both at once. These handlers take their time
between the two (a stream, a handler that waits), which no Chatgate route does
today: the protocol must behave as uvicorn's own would, head first, body later,
nothing held. Served by uvicorn in this process with that protocol class, over
real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from chatgate.http.server import BoundedHttpToolsProtocol
from conftest import free_port

PAUSE = 0.5  # between a slow handler's head and its body


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await receive()  # open until the client goes
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await asyncio.sleep(PAUSE)
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def slow_server() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        slow_app, host="127.0.0.1", port=port, http=BoundedHttpToolsProtocol, ws="websockets-sansio", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def read_until(sock: socket.socket, marker: bytes, seconds: float) -> bytes:
    """What arrives until ``marker`` has, or until ``seconds`` have passed."""
    sock.settimeout(0.05)
    got, deadline = b"", time.monotonic() + seconds
    while marker not in got and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        got += data
    return got


def test_a_head_whose_body_takes_its_time_goes_out_first(slow_server: int) -> None:
    with socket.create_connection(("127.0.0.1", slow_server), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_until(sock, b"\r\n\r\n", PAUSE * 0.6)
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
        assert read_until(sock, b"ok", PAUSE * 2) == b"ok"


def test_a_body_still_comes_when_an_upgrade_follows_a_100_continue_request(slow_server: int) -> None:
    """An upgrade makes no cycle of its own: the one still answering the earlier request is not rewrapped."""
    with socket.create_connection(("127.0.0.1", slow_server), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
        assert b"HTTP/1.1 200 " in read_until(sock, b"HTTP/1.1 200 ", PAUSE * 0.6)
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        # uvicorn answers the upgrade at once, before the earlier body: the body must still come.
        rest = read_until(sock, b"ok", PAUSE * 3)
        assert b"101 Switching Protocols" in rest and rest.endswith(b"ok"), rest
