"""Slow and oversized clients, over raw sockets, against `chatgate serve` with one and with two workers.

Request heads are bounded (a request line of 8 KiB, 16 KiB and 100 headers),
refused with the JSON error body and a closed connection, and must arrive
within CHATGATE_HEADER_TIMEOUT_SECONDS; idle keep-alive connections close after
CHATGATE_KEEPALIVE_TIMEOUT_SECONDS. Both are set short here (2 s and 1 s).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from conftest import Server, start_server

HEADER_TIMEOUT = 2
KEEPALIVE_TIMEOUT = 1


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def hostile_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("hostile"),
        None,
        workers=request.param,
        extra_env={
            "CHATGATE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "CHATGATE_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
        },
    )
    yield srv
    srv.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str:
        body = json.loads(self.body)
        assert body["success"] is False and body["msg"] == body["error"]["message"]
        return str(body["error"]["code"])


class RawConnection:
    """One TCP connection that speaks HTTP/1.1 by hand."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.opened = time.monotonic()
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_some(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:  # the server closed with our bytes unread
            return b""

    def head(self) -> bytes:
        """The next head (without its blank line); what came after it stays in ``buffer``."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.read_some()
            assert data, f"connection closed before a whole head: {self.buffer!r}"
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    def answer(self) -> Answer:
        head = self.head()
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            data = self.read_some()
            assert data, "connection closed in the middle of a body"
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within ``seconds``, sending nothing more first."""
        ready, _, _ = select.select([self.sock], [], [], seconds)
        return bool(ready) and self.read_some() == b"" and not self.buffer

    def close(self) -> None:
        self.sock.close()


Connect = Callable[[], RawConnection]


@pytest.fixture
def connect(hostile_server: Server) -> Iterator[Connect]:
    """Opens connections to the module's server, closed after the test."""
    opened: list[RawConnection] = []

    def open_one() -> RawConnection:
        opened.append(RawConnection(hostile_server))
        return opened[-1]

    yield open_one
    for conn in opened:
        conn.close()


def get(path: str = "/healthz", headers: list[bytes] | None = None) -> bytes:
    lines = [b"GET " + path.encode() + b" HTTP/1.1", b"Host: chatgate", *(headers or [])]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def assert_refused(conn: RawConnection, status: int, code: str) -> None:
    answer = conn.answer()
    assert answer.status == status
    assert answer.error_code() == code
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/json"
    assert conn.closed_within(0.5)


def test_a_request_line_over_8_kib_is_refused_with_414(connect: Connect) -> None:
    conn = connect()
    conn.send(get("/healthz?q=" + "a" * 9 * 1024))
    assert_refused(conn, 414, "request_line_too_long")


def test_headers_over_16_kib_are_refused_with_431(connect: Connect) -> None:
    conn = connect()
    conn.send(get(headers=[b"X-Filler-%d: %s" % (i, b"f" * 1000) for i in range(17)]))
    assert_refused(conn, 431, "headers_too_large")


def test_more_than_100_headers_are_refused_with_431(connect: Connect) -> None:
    conn = connect()
    conn.send(get(headers=[b"X-%d: 1" % i for i in range(101)]))
    assert_refused(conn, 431, "headers_too_large")


def test_a_streamed_1_mib_header_is_cut_off_and_the_server_stays_healthy(connect: Connect) -> None:
    conn = connect()
    chunk, chunks = b"v" * 64 * 1024, 16
    sent = 0
    with pytest.raises((BrokenPipeError, ConnectionResetError)):  # the server hangs up mid-stream
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: chatgate\r\nX-Huge: ")
        for _ in range(chunks):
            conn.send(chunk)
            sent += 1
            time.sleep(0.05)
    assert sent < chunks  # the server stopped reading long before the 1 MiB was through
    assert_refused(conn, 431, "headers_too_large")  # its answer waits in our socket's buffer
    fresh = connect()
    fresh.send(get())
    assert fresh.answer().status == 200


def test_a_head_sent_one_byte_at_a_time_is_cut_off_by_the_header_timeout(connect: Connect) -> None:
    conn = connect()
    closed_after = None
    for byte in get(headers=[b"X-Slow: " + b"s" * 40]):
        try:
            conn.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - conn.opened
            break
        ready, _, _ = select.select([conn.sock], [], [], 0.3)
        if ready:
            answer = conn.answer()
            closed_after = time.monotonic() - conn.opened
            assert (answer.status, answer.error_code()) == (408, "request_timeout")
            assert conn.closed_within(0.5)
            break
    assert closed_after is not None, "the slow head was read to its end"
    assert HEADER_TIMEOUT - 0.5 <= closed_after <= HEADER_TIMEOUT + 3


def test_a_connection_that_sends_nothing_is_closed_by_the_header_timeout(connect: Connect) -> None:
    conn = connect()
    answer = conn.answer()
    closed_after = time.monotonic() - conn.opened
    assert (answer.status, answer.error_code()) == (408, "request_timeout")
    assert conn.closed_within(0.5)
    assert HEADER_TIMEOUT - 0.5 <= closed_after <= HEADER_TIMEOUT + 3


def test_an_idle_keep_alive_connection_is_closed_by_the_keep_alive_timeout(connect: Connect) -> None:
    conn = connect()
    conn.send(get())
    assert conn.answer().status == 200
    answered = time.monotonic()
    assert conn.closed_within(KEEPALIVE_TIMEOUT + 3)
    assert time.monotonic() - answered >= KEEPALIVE_TIMEOUT - 0.3


def test_a_request_just_under_the_limits_is_served(connect: Connect) -> None:
    conn = connect()
    headers = [b"X-Filler-%d: %s" % (i, b"f" * 1000) for i in range(15)]
    conn.send(get("/healthz?q=" + "a" * 7 * 1024, headers=headers))
    answer = conn.answer()
    assert answer.status == 200
    assert json.loads(answer.body) == {"status": "ok"}


def test_pipelined_requests_are_all_answered_in_order(connect: Connect) -> None:
    conn = connect()
    conn.send(get() + get())
    assert [conn.answer().status for _ in range(2)] == [200, 200]
    # Heads that follow a body in the same read: after a Content-Length body, after a chunked one.
    with_length = b"POST /healthz HTTP/1.1\r\nHost: chatgate\r\nContent-Length: 2\r\n\r\n{}"
    chunked = b"POST /healthz HTTP/1.1\r\nHost: chatgate\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    conn.send(with_length + chunked + get())
    assert [conn.answer().status for _ in range(3)] == [405, 405, 200]


def test_requests_pipelined_after_a_connection_close_are_dropped_not_refused(connect: Connect) -> None:
    conn = connect()
    conn.send(get() + get(headers=[b"Connection: close"]) + get() + b"garbage\r\n\r\n")
    first, last = conn.answer(), conn.answer()
    assert (first.status, last.status) == (200, 200)
    assert last.headers["connection"] == "close"
    assert conn.closed_within(2)  # and nothing after: the third request is not answered
    old = connect()
    old.send(get().replace(b"HTTP/1.1", b"HTTP/1.0", 1) + get())
    assert old.answer().status == 200
    assert old.closed_within(2)


def test_an_oversized_pipelined_head_is_refused_after_the_answers_before_it(connect: Connect) -> None:
    conn = connect()
    conn.send(get() + get(headers=[b"X-%d: 1" % i for i in range(101)]))
    assert conn.answer().status == 200
    assert_refused(conn, 431, "headers_too_large")


def test_a_head_request_is_answered_and_the_connection_goes_on(connect: Connect) -> None:
    conn = connect()
    conn.send(get().replace(b"GET ", b"HEAD ", 1))
    assert conn.head().startswith(b"HTTP/1.1 200 ")
    assert conn.buffer == b""  # a head, no body
    conn.send(get())
    answer = conn.answer()
    assert answer.status == 200 and json.loads(answer.body) == {"status": "ok"}


def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body(connect: Connect) -> None:
    conn = connect()
    body = b'{"email": "nobody@example.com", "password": "wrong password 2026"}'
    conn.send(
        b"POST /v1/auth/signin HTTP/1.1\r\nHost: chatgate\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    assert (conn.head(), conn.buffer) == (b"HTTP/1.1 100 Continue", b"")
    conn.send(body)
    answer = conn.answer()
    assert answer.status == 401
    assert answer.error_code() == "invalid_credentials"


def test_a_websocket_upgrade_is_still_answered(connect: Connect) -> None:
    conn = connect()
    conn.send(
        get(
            "/ws",
            headers=[
                b"Upgrade: websocket",
                b"Connection: Upgrade",
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                b"Sec-WebSocket-Version: 13",
            ],
        )
    )
    status_line = conn.read_some().split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 403 Forbidden"  # no WebSocket route: refused by the WebSocket protocol


def test_default_settings_serve_a_normal_request(sqlite_server: Server) -> None:
    # sqlite_server runs with no timeout or keep-alive settings of its own: the defaults.
    conn = RawConnection(sqlite_server)
    try:
        conn.send(get() + get())
        assert [conn.answer().status for _ in range(2)] == [200, 200]
        assert not conn.closed_within(1.5)  # well within the default 5 s keep-alive
    finally:
        conn.close()
