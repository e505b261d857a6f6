"""Ways into one Chatgate service that may land on different processes: an instance, or one
worker process of an instance, reached through a keep-alive connection that worker accepted.

Workers of ``chatgate serve --workers N`` listen on one address and the
kernel picks which of them a connection goes to, so a test cannot choose a
worker by address. A ``Door`` with a ``worker`` pin opens connections until one is held
by that worker (the connection's socket is found among the process's open
files through /proc), then keeps using it.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PIN_ATTEMPTS = 60


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode if inode != "0" else None
    return None


def owner_of(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The process holding the server side of this connection, among ``pids``."""
    inode = _socket_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


@dataclass
class Door:
    """One way in: ``url`` (an instance), optionally pinned to the worker process ``worker``."""

    url: str
    server_pid: int | None = None
    worker: int | None = None
    name: str = ""
    _connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)

    def another(self) -> Door:
        """A second connection through the same door (for simultaneous requests)."""
        return Door(self.url, self.server_pid, self.worker, self.name)

    def request(self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        body = None if json_body is None else json.dumps(json_body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
        reused = self._connection is not None
        connection = self._open()
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # The server closed a kept-alive connection before reading this request: open another.
            self.close()
            connection = self._open()
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        if reply.headers.get("connection", "").lower() == "close":
            self.close()
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Reply:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is not None:
            return self._connection
        parts = urlsplit(self.url)
        for _ in range(PIN_ATTEMPTS):
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
            connection.connect()
            if self.worker is None:
                self._connection = connection
                return connection
            # A request first: the connection is a worker's only once that worker has accepted it.
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            assert connection.sock is not None
            client_port = int(connection.sock.getsockname()[1])
            if owner_of(self.port, client_port, [self.worker]) == self.worker:
                self._connection = connection
                return connection
            connection.close()
        raise AssertionError(f"no connection reached worker {self.worker} in {PIN_ATTEMPTS} attempts")


def worker_doors(url: str, server_pid: int) -> tuple[Door, Door]:
    """Doors to two different worker processes of the instance at ``url``."""
    port = int(urlsplit(url).port or 80)
    deadline = time.monotonic() + 30
    owners: list[int] = []
    while len(owners) < 2 and time.monotonic() < deadline:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        assert connection.sock is not None
        owner = owner_of(port, int(connection.sock.getsockname()[1]), descendants(server_pid))
        connection.close()
        if owner is not None and owner not in owners:
            owners.append(owner)
    assert len(owners) == 2, f"found the workers {owners} of {url}, wanted two"
    return Door(url, server_pid, owners[0], "worker 1"), Door(url, server_pid, owners[1], "worker 2")
