"""The server's hardening without a server: head limits to the byte whatever the read boundaries,
the access-log filter, the timeout settings and the data directory's modes; a response's
head and body written together."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from chatgate.http.server import (
    HEADERS_TOO_LARGE,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_REQUEST_LINE,
    REQUEST_LINE_TOO_LONG,
    HeadGuard,
    HeadWithBody,
    Refusal,
    end_of_blank_line,
)
from chatgate.logs import RedactQueryStrings
from chatgate.settings import Settings, SettingsError
from chatgate.storage.data_dir import prepare_data_dir


def head(line_length: int = 14, headers: list[bytes] | None = None) -> bytes:
    """A head whose request line (without CRLF) is ``line_length`` bytes long."""
    line = b"GET /" + b"a" * (line_length - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == line_length
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers or [b"Host: x"]) + b"\r\n"


def headers_of_total(size: int) -> list[bytes]:
    """Header lines whose bytes, CRLFs included, add up to ``size``."""
    lines = [b"X-Fill: " + b"f" * 990] * (size // 1000)
    rest = size - 1000 * len(lines)
    return [*lines, b"X-Last: " + b"l" * (rest - 10)] if rest else lines


def fed_in_pieces(data: bytes, size: int) -> int | Refusal | None:
    """Feed ``size``-byte reads; answer the verdict, its offset counted from the start of ``data``."""
    guard = HeadGuard()
    for start in range(0, len(data), size):
        verdict = guard.feed(data[start : start + size])
        if isinstance(verdict, int):
            return start + verdict
        if verdict is not None:
            return verdict
    return None


PIECE_SIZES = [1, 2, 3, 5, 64, 1000, 1 << 20]


@pytest.mark.parametrize("size", PIECE_SIZES)
def test_a_head_ends_just_past_its_blank_line_however_it_is_split(size: int) -> None:
    data = head(headers=[b"Host: x", b"Content-Length: 2"])
    assert fed_in_pieces(data + b"{}GET / HTTP/1.1\r\n", size) == len(data)
    assert fed_in_pieces(b"\r\n" + data, size) == len(data) + 2  # a blank line before the request line is skipped
    assert fed_in_pieces(data[:-1], size) is None


@pytest.mark.parametrize("size", PIECE_SIZES)
def test_the_limits_hold_to_the_byte(size: int) -> None:
    assert isinstance(fed_in_pieces(head(MAX_REQUEST_LINE), size), int)
    assert fed_in_pieces(head(MAX_REQUEST_LINE + 1), size) is REQUEST_LINE_TOO_LONG
    assert isinstance(fed_in_pieces(head(headers=headers_of_total(MAX_HEADER_BYTES)), size), int)
    assert fed_in_pieces(head(headers=headers_of_total(MAX_HEADER_BYTES + 1)), size) is HEADERS_TOO_LARGE
    many = [b"X-%d: 1" % i for i in range(MAX_HEADER_COUNT)]
    assert isinstance(fed_in_pieces(head(headers=many), size), int)
    assert fed_in_pieces(head(headers=[*many, b"X-more: 1"]), size) is HEADERS_TOO_LARGE


def test_an_endless_line_is_refused_as_soon_as_it_passes_the_limit() -> None:
    guard = HeadGuard()
    assert guard.feed(b"GET /" + b"a" * (MAX_REQUEST_LINE - 5)) is None
    assert guard.feed(b"a") is REQUEST_LINE_TOO_LONG
    guard = HeadGuard()
    assert guard.feed(b"GET / HTTP/1.1\r\nX-Big: ") is None
    assert guard.feed(b"b" * MAX_HEADER_BYTES) is HEADERS_TOO_LARGE


def test_blank_lines_before_the_request_line_count_towards_it() -> None:
    assert fed_in_pieces(b"\r\n" * (MAX_REQUEST_LINE // 2 + 1), 100) is REQUEST_LINE_TOO_LONG


@pytest.mark.parametrize("split", range(12))
def test_a_chunked_body_ends_after_its_blank_line_across_reads(split: int) -> None:
    body = b"2\r\n{}\r\n0\r\n\r\nGET"
    first, second = body[:split], body[split:]
    found = end_of_blank_line(b"", first)
    if found >= 0:
        assert found == len(body) - 3
    else:
        assert end_of_blank_line(first[-3:], second) == len(body) - 3 - len(first)


def test_the_access_log_keeps_the_path_and_drops_the_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/p/x/?externalAuthCode=SECRET", "1.1", 200), None,
    )  # fmt: skip
    assert RedactQueryStrings().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /p/x/?<redacted> HTTP/1.1" 200'


def test_timeouts_come_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.header_timeout_seconds, defaults.keepalive_timeout_seconds) == (10, 5)
    given = Settings.from_env({"CHATGATE_HEADER_TIMEOUT_SECONDS": "3", "CHATGATE_KEEPALIVE_TIMEOUT_SECONDS": "1"})
    assert (given.header_timeout_seconds, given.keepalive_timeout_seconds) == (3, 1)
    with pytest.raises(SettingsError):
        Settings.from_env({"CHATGATE_HEADER_TIMEOUT_SECONDS": "0"})


def test_the_data_dir_is_made_or_tightened_to_its_owner(tmp_path: Path) -> None:
    made = tmp_path / "new" / "data"
    prepare_data_dir(made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    (existing / "chatgate.db").write_bytes(b"")
    (existing / "chatgate.db").chmod(0o644)
    (existing / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "outside").write_bytes(b"")
    (tmp_path / "outside").chmod(0o644)
    prepare_data_dir(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700
    assert stat.S_IMODE((existing / "chatgate.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "outside").stat().st_mode) == 0o644  # a link is not followed


class SentBytes:
    """What a transport was asked to send, one entry per send."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(data)

    def writelines(self, chunks: tuple[bytes, ...]) -> None:
        self.sends.append(b"".join(chunks))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class LoopTurn:
    """The one loop method the transport uses: callbacks wait for the end of the turn, run by hand here
    (a real loop cannot be run inside the test process's own running one)."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.waiting.append(callback)

    def end(self) -> None:
        callbacks, self.waiting = self.waiting, []
        for callback in callbacks:
            callback()


def test_a_response_head_goes_out_with_its_body_in_one_send() -> None:
    turn, sent = LoopTurn(), SentBytes()
    transport = HeadWithBody(sent, turn)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert sent.sends == []
    transport.write(b"{}")
    assert sent.sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    turn.end()  # nothing more to send
    transport.write(b"more")  # a streamed body's later chunks go as they come
    assert sent.sends[1:] == [b"more"]


def test_a_head_alone_at_the_end_of_the_loop_turn_goes_out_alone() -> None:
    turn, sent = LoopTurn(), SentBytes()
    transport = HeadWithBody(sent, turn)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    turn.end()
    assert sent.sends == [b"HTTP/1.1 200 OK\r\n\r\n"]
    transport.write(b"later")
    assert sent.sends == [b"HTTP/1.1 200 OK\r\n\r\n", b"later"]


def test_a_head_whose_body_never_comes_is_still_sent_before_the_close() -> None:
    turn, sent = LoopTurn(), SentBytes()
    transport = HeadWithBody(sent, turn)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    transport.close()
    assert sent.sends == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and sent.closed


def test_what_a_gone_client_would_not_read_is_dropped() -> None:
    turn, sent = LoopTurn(), SentBytes()
    transport = HeadWithBody(sent, turn)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    sent.closed = True  # the client left
    transport.write(b"body")
    turn.end()
    assert sent.sends == []
