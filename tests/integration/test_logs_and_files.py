"""What a running server leaves behind: log lines without codes, emails or tracebacks for clients that
left, and data files only its owner can read."""

from __future__ import annotations

import secrets
import socket
import stat
import struct
import time
from pathlib import Path

import httpx
import pytest

from conftest import PASSWORD, start_server


@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_the_access_log_leaves_out_query_strings(tmp_path: Path, workers: int) -> None:
    server = start_server(tmp_path, None, workers=workers, extra_env={"CHATGATE_LOG_LEVEL": "info"})
    try:
        with httpx.Client(base_url=server.url) as api:
            api.get("/", params={"externalAuthCode": "SECRETCODE123"})
            api.get("/v1/projects/x/auth/me", params={"email": "a@b.c"})
    finally:
        server.stop()
    log = server.log.read_text()
    assert '"GET /?' in log  # the access log is on, with both requests
    assert '"GET /v1/projects/x/auth/me?' in log
    for secret in ("SECRETCODE123", "a@b.c", "a%40b.c"):
        assert secret not in log
    assert '"GET /?<redacted> HTTP/1.1"' in log


def test_a_download_cut_short_logs_no_error(tmp_path: Path) -> None:
    """A browser leaving a page while a script loads is the client's choice, not a server error."""
    server = start_server(tmp_path, None)
    try:
        for linger in (False, True):  # a plain close, and a reset
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                    sock.sendall(b"GET /static/chat.js HTTP/1.1\r\nHost: chatgate\r\n\r\n" * 50)
                    assert sock.recv(16).startswith(b"HTTP/1.1 200")
                    if linger:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(1)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]


def modes(data_dir: Path) -> dict[str, int]:
    """The permission bits of the directory ('.') and of everything in it."""
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    found.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()})
    return found


def sign_up(url: str) -> None:
    email = f"x-{secrets.token_hex(5)}@example.com"
    r = httpx.post(
        f"{url}/v1/auth/signup", json={"email": email, "password": PASSWORD, "firstname": "A", "lastname": "B"}
    )
    assert r.status_code == 200, r.text


def test_data_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    server = start_server(tmp_path, None)
    try:
        sign_up(server.url)
        found = modes(server.data_dir)
    finally:
        server.stop()
    expected_files = {"chatgate.db", "chatgate.db-wal", "chatgate.db-shm", "chatgate.db.write-lock", "server-key"}
    assert expected_files <= found.keys()
    assert found == {".": 0o700} | {name: 0o600 for name in found if name != "."}


def test_an_existing_data_dir_is_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "existing"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    key = data_dir / "server-key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o644)
    server = start_server(
        tmp_path, f"sqlite:///{data_dir / 'chatgate.db'}", workers=1, extra_env={"CHATGATE_DATA_DIR": str(data_dir)}
    )
    try:
        sign_up(server.url)
        found = modes(data_dir)
    finally:
        server.stop()
    assert found["."] == 0o700
    assert found["server-key"] == 0o600
    assert all(mode == 0o600 for name, mode in found.items() if name != ".")
