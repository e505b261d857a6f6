"""uvicorn's httptools protocol with bounded request heads and a deadline for them.

Every request head passes through a HeadGuard before the parser sees it, so a
head over the limits is refused (414, 431) without the parser or the app ever
holding more than the limits, and a client that takes longer than
CHATGATE_HEADER_TIMEOUT_SECONDS to send a head is answered 408 and dropped.
Bodies go straight to the parser, cut only where their message ends, so that a
pipelined head that follows a body in the same read is guarded too.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from chatgate.http.errors import error_body
from chatgate.settings import Settings

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_COUNT = 100


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        body = error_body(self.code, self.message)
        head = [STATUS_LINE[self.status]]
        head += [name + b": " + value + b"\r\n" for name, value in default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
        head += [b"cache-control: no-store\r\n", b"x-content-type-options: nosniff\r\n"]
        return b"".join([*head, b"connection: close\r\n\r\n", body])


REQUEST_LINE_TOO_LONG = Refusal(414, "request_line_too_long", "The request line is longer than 8 KiB.")
HEADERS_TOO_LARGE = Refusal(
    431, "headers_too_large", "The request headers are larger than 16 KiB or more than 100 in number."
)
REQUEST_TIMEOUT = Refusal(408, "request_timeout", "The request headers did not arrive in time.")


class HeadGuard:
    """Measures one request head as its bytes arrive, chunk after chunk.

    ``feed`` answers None (the head goes on), the offset in the chunk just past
    the head's blank line, or the Refusal the head has earned as soon as it is
    certain. Lines end at LF (the parser refuses a bare LF anyway). Blank lines
    before the request line, which RFC 9112 §2.2 lets a server ignore, count
    towards the request line's 8 KiB.
    """

    def __init__(self) -> None:
        self._in_request_line = True
        self._line = 0  # bytes of the current line so far, its CR included
        self._line_ends_cr = False
        self._skipped = 0
        self._header_bytes = 0  # header lines with their CRLF; not the request line, not the blank line
        self._header_count = 0

    def feed(self, chunk: bytes) -> int | Refusal | None:
        if self._in_request_line and not self._line and not self._skipped:
            whole_head = self._whole_head_within_limits(chunk)
            if whole_head is not None:
                return whole_head
        pos = 0
        while True:
            lf = chunk.find(b"\n", pos)
            end = len(chunk) if lf < 0 else lf
            if end > pos:
                self._line += end - pos
                self._line_ends_cr = chunk[end - 1] == 0x0D
            content = self._line - self._line_ends_cr  # without a CR that may end the line
            if lf < 0:
                return self._check_unfinished_line(content)
            whole = self._line + 1
            self._line, self._line_ends_cr = 0, False
            pos = lf + 1
            verdict = self._end_line(content, whole)
            if verdict is not None:
                return pos if verdict is True else verdict

    @staticmethod
    def _whole_head_within_limits(chunk: bytes) -> int | None:
        """The usual case, in a few C-speed calls: a whole CRLF head within the limits at the start of a read.

        Anything else (None) goes line by line, which gives the same answer here.
        """
        blank = chunk.find(b"\r\n\r\n")
        if blank < 0 or chunk[0] in b"\r\n":
            return None
        end = blank + 4
        if chunk.count(b"\n", 0, end) != chunk.count(b"\r\n", 0, end):
            return None  # a bare LF somewhere: let the line-by-line count decide
        request_line = chunk.find(b"\r\n")
        header_bytes = blank - request_line
        header_count = chunk.count(b"\n", request_line + 2, blank + 2)
        if request_line > MAX_REQUEST_LINE or header_bytes > MAX_HEADER_BYTES or header_count > MAX_HEADER_COUNT:
            return None
        return end

    def _check_unfinished_line(self, content: int) -> Refusal | None:
        # The line will hold at least ``content`` bytes and its LF: refuse now if that is already too many.
        if self._in_request_line:
            return REQUEST_LINE_TOO_LONG if self._skipped + content > MAX_REQUEST_LINE else None
        if content and self._header_bytes + content + 1 > MAX_HEADER_BYTES:
            return HEADERS_TOO_LARGE
        return None

    def _end_line(self, content: int, whole: int) -> Refusal | bool | None:
        """True when this line ends the head."""
        if self._in_request_line:
            if self._skipped + content > MAX_REQUEST_LINE:
                return REQUEST_LINE_TOO_LONG
            if content == 0:
                self._skipped += whole
            else:
                self._in_request_line = False
            return None
        if content == 0:
            return True
        self._header_count += 1
        self._header_bytes += whole
        if self._header_count > MAX_HEADER_COUNT or self._header_bytes > MAX_HEADER_BYTES:
            return HEADERS_TOO_LARGE
        return None


def end_of_blank_line(tail: bytes, chunk: bytes) -> int:
    """Offset in ``chunk`` just past the first CRLFCRLF of ``tail + chunk`` (tail: up to 3 bytes), else -1."""
    if tail:
        found = (tail + chunk[:3]).find(b"\r\n\r\n")
        if found >= 0:
            return found + 4 - len(tail)
    found = chunk.find(b"\r\n\r\n")
    return found + 4 if found >= 0 else -1


class HeadWithBody:
    """The transport one response is written through: its head waits for the body's first bytes.

    uvicorn writes a response's head and body separately: two sends, and the client
    woken twice for one answer. Held back, the head goes out with the body in one
    send. A response whose body follows at once (all of Chatgate's: the app sends
    both in one step) is one send; a head whose body is not written within the
    event loop's turn (a stream that waits, a handler that then reads the request)
    goes out alone at the end of that turn, as uvicorn would have sent it. A close
    sends a held head first.
    """

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None  # None: no head yet; b"": it has gone out

    def write(self, data: bytes) -> None:
        if self._head is None:
            self._head = data
            self._loop.call_soon(self._send_head)
            return
        head, self._head = self._head, b""
        if self._transport.is_closing():
            # The client has gone (a download cut short): drop what it will never read, as
            # asyncio's own transports do, rather than fail the handler (uvloop raises).
            return
        self._transport.writelines((head, data) if head else (data,))

    def _send_head(self) -> None:
        if self._head and not self._transport.is_closing():
            self._transport.write(self._head)
        self._head = b""

    def close(self) -> None:
        self._send_head()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


@functools.cache
def header_timeout_seconds() -> int:
    # uvicorn's Config has no field for it: each worker reads the environment `chatgate serve` checked.
    return Settings.from_env().header_timeout_seconds


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol, with each request head measured before the parser reads it and a deadline for it."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head: HeadGuard | None = HeadGuard()  # None while a body is read
        self._head_parsed = False
        self._body_left: int | None = None  # Content-Length bytes still to come; None: chunked, find its end
        self._body_tail = b""  # the last bytes of a chunked body, to find its end across reads
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._last_request_read = False  # it asked for the connection to close: what follows is dropped
        self._refusal_after_response: bytes | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data and not self._refused and not self._last_request_read and not self.transport.is_closing():
            if self.transport.get_protocol() is not self:
                return  # upgraded to WebSocket: as uvicorn does, bytes sent before the 101 are dropped
            data = self._take_head(data) if self._head is not None else self._take_body(data)

    def _take_head(self, data: bytes) -> bytes:
        assert self._head is not None
        if self._header_timer is None:  # the first byte of a head that follows a finished request
            self._start_header_timer()
        verdict = self._head.feed(data)
        if isinstance(verdict, Refusal):
            self._refuse(verdict)
            return b""
        if verdict is None:
            super().data_received(data)
            return b""
        self._head, self._head_parsed = None, False
        self._cancel_header_timer()
        super().data_received(data[:verdict])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return b""
        if not self._head_parsed:  # the guard saw a whole head where the parser did not
            self.send_400_response("Invalid HTTP request received.")
            return b""
        if self._head is None:  # the message has a body
            self._body_left = self._content_length()
            self._body_tail = b""
        return data[verdict:]

    def _content_length(self) -> int | None:
        # The parser has accepted the head: one Content-Length of digits, or chunked (it refuses both).
        length = None
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                length = int(value)
        return length

    def _take_body(self, data: bytes) -> bytes:
        if self._body_left:  # Content-Length: the message ends after that many bytes
            end = self._body_left
            self._body_left = end - len(data) if end > len(data) else None
        else:  # chunked: the message ends just after a blank line (the last chunk's or the trailers')
            end = end_of_blank_line(self._body_tail, data)
            self._body_tail = (self._body_tail + (data if end < 0 else data[:end])[-3:])[-3:]
        if 0 < end < len(data):
            super().data_received(data[:end])
            return data[end:]
        super().data_received(data)
        return b""

    def on_headers_complete(self) -> None:
        self._head_parsed = True
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # Only a cycle made for this request (an upgrade makes none), and straight through: a 100
        # Continue, written before the head, and the answer to a HEAD, whose body uvicorn never writes.
        if (
            cycle is not None
            and cycle is not previous
            and not cycle.waiting_for_100_continue
            and cycle.scope["method"] != "HEAD"
        ):
            cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head, self._body_left = HeadGuard(), None
        # After `Connection: close` (or HTTP/1.0 without keep-alive) the connection ends with this
        # answer. Bytes after it are not parsed: the parser would refuse them with a 400 and a
        # close that cut off the answers still owed to the requests before.
        if not self.parser.should_keep_alive():
            self._last_request_read = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        answer = self._refusal_after_response
        if answer is not None and self.cycle.response_complete and not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _refuse(self, refusal: Refusal) -> None:
        """Answer and close; read nothing more meanwhile."""
        self._refused, self._head = True, None
        self._cancel_header_timer()
        self.flow.pause_reading()
        answer = refusal.response(self.server_state.default_headers)
        if self.cycle is not None and not self.cycle.response_complete:
            # Earlier requests on this connection are still being answered: refuse after them, in order.
            self._refusal_after_response = answer
            return
        self.transport.write(answer)
        self.transport.close()

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(header_timeout_seconds(), self._on_header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self._refuse(REQUEST_TIMEOUT)
