"""``chatgate migrate`` for deployments that migrate as a step of their own, and
``CHATGATE_MIGRATE_ON_START=false`` for servers that must not migrate."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from chatgate.storage.migrate import head_revision, upgrade
from chatgate.storage.tables import metadata
from conftest import start_server


def chatgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def sqlite_env(data_dir: Path, **more: str) -> dict[str, str]:
    database_url = f"sqlite:///{data_dir / 'chatgate.db'}"
    return {"CHATGATE_DATA_DIR": str(data_dir), "CHATGATE_DATABASE_URL": database_url, **more}


def tables(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with sqlite3.connect(database) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_server_that_may_not_migrate_waits_for_chatgate_migrate(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    no_migrations = sqlite_env(data_dir, CHATGATE_MIGRATE_ON_START="false")
    head = head_revision()

    refused = chatgate(no_migrations, "serve")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines() == [
        "chatgate: the database has no Chatgate schema yet and CHATGATE_MIGRATE_ON_START is off: run `chatgate migrate`"
    ]
    assert "users" not in tables(data_dir / "chatgate.db")  # it did not migrate

    migrated = chatgate(no_migrations, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == f"chatgate: migrated the database from nothing to revision {head}\n"
    again = chatgate(no_migrations, "migrate")
    assert again.stdout == f"chatgate: the database schema is up to date (revision {head})\n"

    server = start_server(
        tmp_path, f"sqlite:///{data_dir / 'chatgate.db'}", workers=1, extra_env=no_migrations
    )  # starts, since the schema is at the head
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    finally:
        server.stop()


def test_a_schema_behind_the_head_is_refused_when_starts_may_not_migrate(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    upgrade(f"sqlite:///{data_dir / 'chatgate.db'}", "0001")
    refused = chatgate(sqlite_env(data_dir, CHATGATE_MIGRATE_ON_START="0"), "serve")
    assert refused.returncode != 0
    assert refused.stderr.splitlines() == [
        f"chatgate: the database schema is at revision 0001, not {head_revision()}, and CHATGATE_MIGRATE_ON_START"
        " is off: run `chatgate migrate`"
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_instances_starting_together_migrate_one_after_the_other(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """Four ``chatgate migrate`` at once on one fresh database: all succeed, the schema is at the head once."""
    if backend == "postgresql":
        url = request.getfixturevalue("scratch_postgres").url
    else:
        url = f"sqlite:///{tmp_path / 'data' / 'chatgate.db'}"
    env = {"CHATGATE_DATA_DIR": str(tmp_path / "data"), "CHATGATE_DATABASE_URL": url}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: chatgate(env, "migrate"), range(4)))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert sum("migrated the database from nothing" in r.stdout for r in results) == 1
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migrations_build_the_schema_tables_py_declares(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """tables.py (what the code assumes) and the Alembic revisions (what databases get) say the same."""
    if backend == "postgresql":
        url = request.getfixturevalue("scratch_postgres").url
    else:
        url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def journal_mode(database: Path, switch_to: str | None = None) -> str:
    with contextlib.closing(sqlite3.connect(database)) as db:
        pragma = f"PRAGMA journal_mode={switch_to}" if switch_to else "PRAGMA journal_mode"
        return str(db.execute(pragma).fetchone()[0])


def test_the_database_is_in_wal_before_any_worker_opens_it(tmp_path: Path) -> None:
    """Workers that open a file not yet in WAL all try to switch it, and SQLite refuses all but one
    ("database is locked") at once: a worker failed to start on a fresh or restored database."""
    data_dir = tmp_path / "data"
    assert chatgate(sqlite_env(data_dir), "migrate").returncode == 0
    database = data_dir / "chatgate.db"
    assert journal_mode(database) == "wal"

    # A restored backup is one file in rollback-journal mode; the start checks it (without
    # migrating here) before the workers start.
    assert journal_mode(database, switch_to="DELETE") == "delete"
    srv = start_server(tmp_path, f"sqlite:///{database}", workers=2, extra_env={"CHATGATE_MIGRATE_ON_START": "false"})
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert journal_mode(database) == "wal"
    finally:
        srv.stop()
