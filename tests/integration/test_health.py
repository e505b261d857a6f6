"""/healthz tells a load balancer the truth about the database, quickly, and recovers by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from async_tools import run_async
from chatgate.services.health import HealthService
from conftest import ScratchDatabase, sign_up_staff, start_server


def outage(database: ScratchDatabase, *, on: bool) -> None:
    """Make the database refuse connections (and drop those the server's pools keep), or let them in again."""
    with database.admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS {"false" if on else "true"}'))
        if on:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": database.name},
            )


def health(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.get(f"{url}/healthz", timeout=10)
    return answer, time.monotonic() - started


def test_healthz_answers_503_while_the_database_is_gone_and_200_when_it_is_back(
    tmp_path: Path, scratch_postgres: ScratchDatabase
) -> None:
    server = start_server(tmp_path, scratch_postgres.url)
    try:
        assert health(server.url)[0].json() == {"status": "ok"}

        outage(scratch_postgres, on=True)
        for _ in range(4):  # each worker process, whatever connections its pool held
            answer, seconds = health(server.url)
            assert answer.status_code == 503
            assert answer.json() == {"status": "unavailable", "reason": "database unreachable"}
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["cache-control"] == "no-store"
            assert seconds < 3
        # The API says the same, without a traceback in the log for each request.
        for path, body in (
            ("/v1/auth/signin", {"email": "x@example.com", "password": "whatever 12345"}),
            ("/v1/projects/0123456789abcdef01234567/auth/external-code", {"externalAuthCode": "a.b.c"}),
        ):
            answer = httpx.post(f"{server.url}{path}", json=body)
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "database_unavailable"
            assert answer.headers["retry-after"] == "5"
        assert httpx.get(f"{server.url}/").status_code == 503  # a page, served by Starlette
        # A browser on another site: its project's allowed origins cannot be read either.
        for method in ("OPTIONS", "GET"):
            answer = httpx.request(
                method,
                f"{server.url}/v1/projects/0123456789abcdef01234567/auth/me",
                headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
            )
            assert answer.status_code == 503, (method, answer.text)
            assert answer.json()["error"]["code"] == "database_unavailable"

        outage(scratch_postgres, on=False)
        deadline = time.monotonic() + 5
        while health(server.url)[0].status_code != 200:
            assert time.monotonic() < deadline, "the pool did not reconnect"
            time.sleep(0.1)
        for _ in range(4):
            assert health(server.url)[0].json() == {"status": "ok"}
        with httpx.Client(base_url=server.url) as api:
            sign_up_staff(api)  # not only the ping: writes work again too
    finally:
        server.stop()
    log = server.log.read_text()
    assert "database unreachable" in log and "database reachable again" in log
    assert "database unavailable, answering 503" in log
    assert "Traceback" not in log


class SilentDatabase:
    """A database that accepted the connection and then never answers."""

    async def ping(self) -> None:
        await asyncio.sleep(3600)


class Context:
    storage = SilentDatabase()


def test_the_ping_is_bounded() -> None:
    service = HealthService(Context(), ping_timeout_seconds=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    verdict = run_async(service.check())
    assert (verdict.ok, verdict.reason) == (False, "database unreachable")
    assert time.monotonic() - started < 1
