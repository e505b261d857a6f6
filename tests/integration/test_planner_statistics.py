"""On a PostgreSQL whose autovacuum is off, Chatgate analyzes its own tables as they grow, so that a
login finds its user through the unique (project, externalId) index instead of reading the project's
every user (what the planner picks for a never-analyzed table)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import create_engine, text

from async_tools import run_async
from chatgate.storage.planner_statistics import analyze_stale_tables, autovacuum_is_off
from chatgate.storage.postgres import dsn_of
from conftest import Server, make_project, sign_up_staff, start_server
from jwt_tools import hs256
from live_tools import fresh_postgres

USERS = 150
LOOKUP = "EXPLAIN SELECT * FROM end_users WHERE project_id = 'p' AND external_id = 'x'"


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[Server]:
    with fresh_postgres() as url:
        engine = create_engine(url)
        with engine.connect() as conn:
            autovacuum = conn.execute(text("SHOW autovacuum")).scalar()
        engine.dispose()
        if autovacuum != "off":
            pytest.skip("this PostgreSQL runs autovacuum, which analyzes the tables itself")
        srv = start_server(tmp_path, url, workers=2)
        try:
            yield srv
        finally:
            srv.stop()


def plan_and_last_analyze(srv: Server) -> tuple[str, object]:
    with srv.engine.connect() as conn:
        # A table this small is best read whole; the question is which index the planner prefers.
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in conn.execute(text(LOOKUP)))
        analyzed = conn.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'end_users'")
        ).scalar()
    return plan, analyzed


def test_a_growing_user_table_is_analyzed_and_logins_use_the_unique_index(pg_server: Server) -> None:
    with httpx.Client(base_url=pg_server.url, timeout=30) as api:
        project = make_project(api, sign_up_staff(api))
        exchange = f"/v1/projects/{project.id}/auth/external-code"
        for i in range(USERS):
            code = hs256(project.secret, {"user": {"id": f"grown-{i}"}, "exp": int(time.time()) + 600})
            assert api.post(exchange, json={"externalAuthCode": code}).status_code == 200

    deadline = time.monotonic() + 15
    plan, analyzed = plan_and_last_analyze(pg_server)
    while analyzed is None and time.monotonic() < deadline:
        time.sleep(0.25)
        plan, analyzed = plan_and_last_analyze(pg_server)
    assert analyzed is not None, "end_users was never analyzed"
    assert "uq_end_users_project_id_external_id" in plan, plan


async def _changes_seen(connection: Any, table: str, at_least: int) -> None:
    """Wait until the statistics system counts the table's changes (backends report them within a second)."""
    deadline = time.monotonic() + 10
    query = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = $1"
    while (await connection.fetchval(query, table) or 0) < at_least:
        assert time.monotonic() < deadline, f"{table}: changes never counted"
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        await asyncio.sleep(0.1)


def test_a_table_analyzed_within_the_minute_waits_however_much_it_changed() -> None:
    """Like autovacuum (once a minute per database): under load a sign-in table grows by its 10%
    every few seconds, and each ANALYZE is a burst of work the requests queued behind it feel."""

    async def scenario(url: str) -> tuple[list[str], list[str], list[str], str]:
        connection = await asyncpg.connect(dsn_of(url))
        try:
            if not await autovacuum_is_off(connection):
                pytest.skip("this PostgreSQL runs autovacuum, which analyzes the tables itself")
            # The keeper knows Chatgate's tables by name; their columns do not matter to it.
            await connection.execute("CREATE TABLE messages (n int)")
            await connection.execute("INSERT INTO messages SELECT generate_series(1, 200)")
            await _changes_seen(connection, "messages", 200)
            first = await analyze_stale_tables(connection)
            await connection.execute("INSERT INTO messages SELECT generate_series(1, 2000)")
            await _changes_seen(connection, "messages", 2000)
            within_the_minute = await analyze_stale_tables(connection)
            once_it_passed = await analyze_stale_tables(connection, reanalyze_after=0)
            # The slower pace was the ANALYZE's own: the connection goes back to the pool without it.
            pace_left = str(await connection.fetchval("SHOW vacuum_cost_delay"))
            return first, within_the_minute, once_it_passed, pace_left
        finally:
            await connection.close()

    with fresh_postgres() as url:
        first, within_the_minute, once_it_passed, pace_left = run_async(scenario(url))
    assert first == ["messages"]
    assert within_the_minute == []
    assert once_it_passed == ["messages"]
    assert pace_left == "0"


def test_only_chatgates_own_tables_are_analyzed_whatever_the_others_are_called() -> None:
    """A table of the schema named to close the quote and run a statement of its own is not
    Chatgate's: it is neither analyzed nor run."""
    odd = 'a"; DROP TABLE victim; --'

    async def scenario(url: str) -> tuple[list[str], bool, object]:
        connection = await asyncpg.connect(dsn_of(url))
        try:
            if not await autovacuum_is_off(connection):
                pytest.skip("this PostgreSQL runs autovacuum, which analyzes the tables itself")
            for table in ("a", "victim", odd.replace('"', '""')):
                await connection.execute(f'CREATE TABLE "{table}" (n int)')
                await connection.execute(f'INSERT INTO "{table}" SELECT generate_series(1, 200)')
            await _changes_seen(connection, "victim", 200)
            await _changes_seen(connection, odd, 200)
            analyzed = await analyze_stale_tables(connection)
            victim_left = await connection.fetchval("SELECT to_regclass('victim') IS NOT NULL")
            odd_analyzed = await connection.fetchval(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = $1", odd
            )
            return analyzed, victim_left, odd_analyzed
        finally:
            await connection.close()

    with fresh_postgres() as url:
        analyzed, victim_left, odd_analyzed = run_async(scenario(url))
    assert analyzed == []
    assert victim_left
    assert odd_analyzed is None
