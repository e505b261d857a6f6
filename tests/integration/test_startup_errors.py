"""A start that cannot go on says why in one line and exits non-zero: no traceback, no password.

Each case runs the real CLI, ``chatgate serve`` and ``chatgate migrate`` side
by side, as an operator would.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from chatgate.storage.reachability import DatabaseUnusable, probe
from conftest import POSTGRES_URL, free_port

PASSWORD = "pw-Never-Shown-42"


def postgres_url(*, port: int | None = None, database: str = "test", user: str | None = None) -> str:
    """A PostgreSQL URL on the test server (or a port where nothing listens), with a password to keep out of sight."""
    if port is None and not POSTGRES_URL:
        pytest.skip("needs CHATGATE_TEST_POSTGRES_URL")
    base = make_url(POSTGRES_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    return base.set(
        username=user or base.username, password=PASSWORD, port=port or base.port, database=database
    ).render_as_string(hide_password=False)


def run_cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", command, "--port", str(free_port())]
        if command == "serve"
        else [sys.executable, "-m", "chatgate", command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def refusals(env: dict[str, str], commands: tuple[str, ...] = ("serve", "migrate")) -> list[str]:
    """Run each command; each must exit non-zero with one line on stderr and nothing else. Their lines."""
    with ThreadPoolExecutor(len(commands)) as pool:
        done = list(pool.map(lambda command: run_cli(command, env), commands))
    lines = []
    for command, result in zip(commands, done, strict=True):
        assert result.returncode != 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, (command, result.stderr)
        assert PASSWORD not in result.stderr + result.stdout
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1, (command, result.stderr)
        assert result.stderr.startswith("chatgate: ")
        lines.append(result.stderr.strip())
    return lines


def data_env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    data_dir = tmp_path / "data"
    return {
        "CHATGATE_DATA_DIR": str(data_dir),
        "CHATGATE_DATABASE_URL": database_url or f"sqlite:///{data_dir / 'chatgate.db'}",
    }


def test_an_unreachable_postgresql(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    for line in refusals(data_env(tmp_path, postgres_url(port=port))):
        assert line == f"chatgate: cannot reach the database at 127.0.0.1:{port} (connection refused)"


def test_a_missing_database(tmp_path: Path) -> None:
    for line in refusals(data_env(tmp_path, postgres_url(database="no_such_db"))):
        assert line.startswith('chatgate: the database "no_such_db" does not exist on ')


def test_refused_credentials(tmp_path: Path) -> None:
    for line in refusals(data_env(tmp_path, postgres_url(user="no_such_role"))):
        assert 'refused user "no_such_role"' in line


@pytest.mark.parametrize("where", ["under-a-file", "unwritable"])
def test_an_unusable_data_dir(tmp_path: Path, where: str) -> None:
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("not a directory")
        data_dir = tmp_path / "a-file" / "data"
    else:
        data_dir = Path("/sys/chatgate-data")  # sysfs refuses new directories, even to root
    for line in refusals({"CHATGATE_DATA_DIR": str(data_dir), "CHATGATE_DATABASE_URL": ""}):
        assert line.startswith(f"chatgate: cannot use the data directory {data_dir} (")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    env = data_env(tmp_path)
    Path(env["CHATGATE_DATA_DIR"]).mkdir()
    Path(env["CHATGATE_DATA_DIR"], "chatgate.db").write_text("hello, I am a text file" * 100)
    for line in refusals(env):
        assert line.endswith("(file is not a database)")


def test_a_migration_that_fails_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = data_env(tmp_path)
    Path(env["CHATGATE_DATA_DIR"]).mkdir()
    database = Path(env["CHATGATE_DATA_DIR"], "chatgate.db")
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE projects (something_else TEXT)")  # in the way of the first revision
    for line in refusals(env):
        assert line.startswith("chatgate: migrating the database from an empty database to revision ")
        assert "table projects already exists" in line
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"projects"}  # the failed migration was rolled back whole


def test_a_schema_from_a_newer_version(tmp_path: Path) -> None:
    env = data_env(tmp_path)
    Path(env["CHATGATE_DATA_DIR"]).mkdir()
    with sqlite3.connect(Path(env["CHATGATE_DATA_DIR"], "chatgate.db")) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('9999')")
    for line in refusals(env):
        assert "at revision 9999, which this version of Chatgate does not know" in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHATGATE_DB_POOL_SIZE", "many"),
        ("CHATGATE_SERVER_KEY", "not hex at all"),
        ("CHATGATE_RATE_LIMITS", "signin_moon=1/1"),
        ("CHATGATE_MIGRATE_ON_START", "perhaps"),
        ("CHATGATE_WORKERS", "two"),
        ("CHATGATE_LOG_LEVEL", "loud"),
    ],
)
def test_a_malformed_setting(tmp_path: Path, name: str, value: str) -> None:
    for line in refusals({**data_env(tmp_path), name: value}):
        assert name in line


def test_a_database_that_never_answers_does_not_hang_the_start() -> None:
    """A listener that accepts and stays silent (a stuck server, a black-holing proxy) is given up on."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DatabaseUnusable) as caught, ThreadPoolExecutor(1) as thread:
            # In a thread of its own, as the CLI runs it: the browser tests keep a loop running in this one.
            thread.submit(probe, f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test", 0.5).result()
    assert time.monotonic() - started < 5
    assert str(caught.value) == f"cannot reach the database at 127.0.0.1:{port} (no answer within 0.5 s)"


def test_without_a_public_url_the_server_names_the_port_it_listens_on(tmp_path: Path) -> None:
    """Links, snippets and custom-token audiences must name the server people reach, not port 8000."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHATGATE_PUBLIC_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatgate", "serve", "--port", str(port)],
        env={**env, **data_env(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                document = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")
        assert document["servers"] == [{"url": f"http://127.0.0.1:{port}"}]
    finally:
        process.terminate()
        process.wait(10)
