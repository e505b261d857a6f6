"""On a PostgreSQL whose autovacuum is off, Chatgate analyzes its own tables as they grow, so that a
login finds its user through the unique (project, externalId) index instead of reading the project's
every user (what the planner picks for a never-analyzed table)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

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
