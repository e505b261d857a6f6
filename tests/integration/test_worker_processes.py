"""``chatgate serve --workers N``: every worker process takes its share of the connections, and the
port stays the instance's own."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server
from doors import descendants, owner_of

CONNECTIONS = 64
HELD_UP_SECONDS = 0.3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, None, workers=2)
    try:
        yield srv
    finally:
        srv.stop()


def answered(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: chatgate\r\n\r\n")
    return conn.recv(4096)


def accepting_workers(port: int, parent: int, count: int) -> list[int]:
    """/healthz answers once one worker is up: wait until ``count`` processes have taken a connection."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port)) as conn:
                assert answered(conn).startswith(b"HTTP/1.1 200")
                owner = owner_of(port, conn.getsockname()[1], descendants(parent))
        except ConnectionError:  # no worker listening yet, or one starting up (being replaced)
            owner = None
        seen |= {owner} if owner else set()
        if len(seen) == count:
            return sorted(seen)
        time.sleep(0.02)
    raise AssertionError(f"of {descendants(parent)}, only {seen} took connections")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="other systems' reuse-port groups do not spread")
def test_a_burst_of_connections_is_spread_over_the_workers(server: Server) -> None:
    """A client that opens its connections at once (a proxy's pool, a load generator) used to land
    45 to 55 of 64 on one worker under load: the workers shared one queue of connections, and
    whichever ran first accepted all that waited. Each worker now has a queue of its own, and
    which one a connection joins does not depend on who runs first."""
    port = server.port
    workers = accepting_workers(port, server.process.pid, 2)
    # One worker held up (busy, or not yet scheduled on a loaded machine) while the burst comes.
    os.kill(workers[0], signal.SIGSTOP)
    try:
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        time.sleep(HELD_UP_SECONDS)
    finally:
        os.kill(workers[0], signal.SIGCONT)
    try:
        assert all(answered(conn).startswith(b"HTTP/1.1 200") for conn in burst)
        owners = Counter(owner_of(port, conn.getsockname()[1], workers) for conn in burst)
    finally:
        for conn in burst:
            conn.close()
    assert set(owners) == set(workers), owners
    # Spread by the kernel, each connection on either at random: fewer than 16 of 64 is a one in
    # ~40,000 draw.
    assert min(owners.values()) >= 16, owners


def test_a_second_instance_on_the_same_port_is_refused(server: Server, tmp_path: Path) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "chatgate", "serve", "--port", str(server.port), "--workers", "2"],
        env={
            **os.environ,
            "CHATGATE_DATA_DIR": str(tmp_path / "second"),
            "CHATGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'second' / 'chatgate.db'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "address already in use" in second.stderr.lower()
    assert "Traceback" not in second.stderr
    # Every new connection still reaches the first instance.
    with httpx.Client(base_url=server.url, timeout=10) as api:
        for _ in range(20):
            assert api.get("/healthz", headers={"Connection": "close"}).status_code == 200


def gone(pid: int) -> bool:
    """Exited (a zombie until its parent reaps it): its sockets are closed."""
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def wait_until_gone(*pids: int) -> None:
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.02)


def test_a_worker_that_dies_is_replaced_and_takes_its_share_again(server: Server) -> None:
    port = server.port
    before = descendants(server.process.pid)
    dead, alive = accepting_workers(port, server.process.pid, 2)
    os.kill(dead, signal.SIGKILL)
    wait_until_gone(dead)
    # Every new connection reaches the worker left: the dead one's socket went with it.
    with httpx.Client(base_url=server.url, timeout=10) as api:
        for _ in range(20):
            assert api.get("/healthz", headers={"Connection": "close"}).status_code == 200
    deadline = time.monotonic() + 30
    while not set(descendants(server.process.pid)) - set(before):
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.1)
    now = accepting_workers(port, server.process.pid, 2)
    assert alive in now and dead not in now


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reuse-port groups are Linux's here")
def test_while_no_worker_is_up_no_other_socket_can_take_the_port(server: Server) -> None:
    """All workers dead at once (a crash, the OOM killer): until the parent starts new ones, the
    port must stay the instance's. The parent's socket is bound and never listens, and a bound
    socket with SO_REUSEADDR let any other user's socket with SO_REUSEADDR bind beside it."""
    port = server.port
    parent = server.process.pid
    workers = accepting_workers(port, parent, 2)
    os.kill(parent, signal.SIGSTOP)  # no replacements while the port is tried
    try:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        wait_until_gone(*workers)
        for host in ("127.0.0.1", "0.0.0.0"):
            with socket.socket() as intruder:
                intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                with pytest.raises(OSError) as refused:
                    intruder.bind((host, port))
                assert refused.value.errno == errno.EADDRINUSE, host
    finally:
        os.kill(parent, signal.SIGCONT)
    assert len(accepting_workers(port, parent, 2)) == 2  # back, and serving
