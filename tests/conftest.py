"""Shared fixtures: a real Chatgate server per database backend, reached over HTTP.

* ``server`` runs ``chatgate serve`` (two worker processes) against SQLite and,
  when ``CHATGATE_TEST_POSTGRES_URL`` is set, against a fresh PostgreSQL
  database; tests using it run once per backend.
* ``db`` reads the server's database directly, to assert which rows exist.
* Personas (``owner``, ``project``) are made through the public API.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

pytest_plugins = ["browser_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CHATGATE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("CHATGATE_TEST_REDIS_URL")
RELAXED_RATES = "signin_account=0/1,signin_ip=0/1,signup_ip=0/1,anonymous_ip=0/1,message_sender=0/1"
PASSWORD = "a sturdy passphrase 42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    database_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.database_url)

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.engine.dispose()


def start_server(
    tmp: Path, database_url: str | None, *, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    data_dir = tmp / f"data-{port}"
    database_url = database_url or f"sqlite:///{data_dir / 'chatgate.db'}"
    env = {
        **os.environ,
        "CHATGATE_DATA_DIR": str(data_dir),
        "CHATGATE_DATABASE_URL": database_url,
        "CHATGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CHATGATE_RATE_LIMITS": RELAXED_RATES,
        "CHATGATE_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    log = tmp / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chatgate exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(url, database_url, data_dir, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"chatgate did not become healthy:\n{log.read_text()}")


@pytest.fixture(scope="session")
def postgres_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need CHATGATE_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"chatgate_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server the scale-out tests share counts through."""
    if not REDIS_URL:
        pytest.skip("Redis tests need CHATGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return REDIS_URL


@dataclass
class ScratchDatabase:
    """A PostgreSQL database of one test's own, which it may break (make unreachable, half-migrate)."""

    admin: Engine
    name: str
    url: str


@pytest.fixture
def scratch_postgres() -> Iterator[ScratchDatabase]:
    if not POSTGRES_URL:
        pytest.skip("needs CHATGATE_TEST_POSTGRES_URL")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"chatgate_scratch_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ScratchDatabase(admin, name, admin.url.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database_url = request.getfixturevalue("postgres_database") if request.param == "postgresql" else None
    srv = start_server(tmp_path_factory.mktemp(request.param), database_url)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite server for tests that do not depend on the database (pages, OpenAPI)."""
    srv = start_server(tmp_path_factory.mktemp("sqlite-only"), None)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


class Db:
    """Direct reads of the server's database, for asserting what exists."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), params).scalar() or 0)

    def execute(self, sql: str, **params: Any) -> None:
        """Change a row behind the server's back (to make time pass, for instance)."""
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())


@pytest.fixture
def db(server: Server) -> Db:
    return Db(server.engine)


@dataclass
class Staff:
    email: str
    token: str
    id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.token}


@dataclass
class Project:
    id: str
    secret: str
    owner: Staff


def fit_in_one_window(seconds: int, needed: float = 20.0) -> None:
    """Rate windows are fixed and start on multiples of their length since the epoch: wait,
    when the current one ends within ``needed`` seconds, so that a test's attempts all fall
    in one window (a count that straddles two starts again halfway)."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.1)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


def sign_up_staff(api: httpx.Client, prefix: str = "staff") -> Staff:
    email = unique_email(prefix)
    r = api.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "firstname": "Ada", "lastname": "Lovelace"}
    )
    assert r.status_code == 200, r.text
    r = api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Staff(email, body["token"], body["user"]["_id"])


def make_project(api: httpx.Client, owner: Staff, settings: dict[str, Any] | None = None) -> Project:
    r = api.post("/v1/projects", json={"name": "Support"}, headers=owner.auth)
    assert r.status_code == 200, r.text
    pid = r.json()["_id"]
    if settings:
        r = api.patch(f"/v1/projects/{pid}", json={"settings": settings}, headers=owner.auth)
        assert r.status_code == 200, r.text
    r = api.post(f"/v1/{pid}/keys/generate", headers=owner.auth)
    assert r.status_code == 200, r.text
    return Project(pid, r.json()["jwtSecret"], owner)


@pytest.fixture
def owner(api: httpx.Client) -> Staff:
    return sign_up_staff(api, "owner")


@pytest.fixture
def project(api: httpx.Client, owner: Staff) -> Project:
    return make_project(api, owner)


# -- real token clients --------------------------------------------------

NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="session")
def node_mint() -> Any:
    """Mint with the vendors' own Node examples (jsonwebtoken from npm)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the Node token examples cannot run")
    if not (NODE_DIR / "node_modules" / "jsonwebtoken").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install jsonwebtoken")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True)

    def mint(mode: str, secret: str, payload: dict[str, Any]) -> str:
        import json

        done = subprocess.run(
            [node, str(NODE_DIR / "mint.js"), mode, secret, json.dumps(payload)],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    return mint
