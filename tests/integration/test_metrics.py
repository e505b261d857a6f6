"""/metrics: off by default; when on, requests by route template and status, latency, sign-ins by result
and PostgreSQL pool use, summed over the worker processes; and only for whom it is meant."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import pytest

from conftest import Server, make_project, sign_up_staff, start_server
from jwt_tools import hs256, now

USERS_ROUTE = "/v1/projects/{pid}/users"


def sample(page: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, None when absent."""
    for line in page.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def scrape(url: str, **headers: str) -> str:
    r = httpx.get(f"{url}/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def test_metrics_are_off_unless_asked_for(sqlite_server: Server) -> None:
    r = httpx.get(f"{sqlite_server.url}/metrics")
    assert r.status_code == 404


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_metrics_count_requests_and_sign_ins_over_every_worker(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    database_url = request.getfixturevalue("scratch_postgres").url if backend == "postgresql" else None
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = start_server(
        tmp_path,
        database_url,
        workers=2,
        extra_env={"CHATGATE_METRICS": "1", "CHATGATE_DB_POOL_SIZE": "3", "TMPDIR": str(temp)},
    )
    try:
        # The workers keep their counts in one fresh directory of the server's own.
        (metrics_dir,) = temp.iterdir()
        assert stat.S_IMODE(metrics_dir.stat().st_mode) == 0o700

        # Twenty requests on twenty connections, which the two workers share between them.
        for _ in range(20):
            assert httpx.get(f"{server.url}/v1/projects/0123456789abcdef01234567/users").status_code == 401
        with httpx.Client(base_url=server.url) as api:
            assert api.get("/static/chat.css").status_code == 200
            assert api.get("/no/such/page-0123456789").status_code == 404
            project = make_project(api, sign_up_staff(api))
            good = hs256(project.secret, {"user": {"id": "ann"}, "exp": now() + 600})
            forged = hs256("not the project's secret, though just as long", {"user": {"id": "ann"}, "exp": now() + 600})
            for code, status in ((good, 200), (forged, 401), (forged, 401)):
                r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
                assert r.status_code == status

        for _ in range(4):  # whichever worker answers, it sums them all
            page = scrape(server.url)
            assert sample(page, "chatgate_http_requests_total", route=USERS_ROUTE, method="GET", status="401") == 20
            assert sample(page, "chatgate_http_request_duration_seconds_count", route=USERS_ROUTE, method="GET") == 20
            assert sample(page, "chatgate_signins_total", method="external_auth_code", result="success") == 1
            assert sample(page, "chatgate_signins_total", method="external_auth_code", result="bad_signature") == 2
            assert sample(page, "chatgate_http_requests_total", route="/static/{path}", method="GET", status="200") == 1
            assert sample(page, "chatgate_http_requests_total", route="unmatched", method="GET", status="404") == 1
            for raw in ("0123456789", project.id, "chat.css"):
                assert raw not in page  # templates, never raw paths
            if backend == "postgresql":
                assert sample(page, "chatgate_db_pool_max_connections") == 2 * 3  # two workers' pools of 3
                idle = sample(page, "chatgate_db_pool_connections", state="idle")
                in_use = sample(page, "chatgate_db_pool_connections", state="in_use")
                assert idle is not None and in_use is not None and 1 <= idle + in_use <= 6
            else:
                assert "chatgate_db_pool" not in page  # SQLite keeps no pool

        # Only for this machine, and never through a proxy.
        relayed = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        assert relayed.status_code == 403
    finally:
        server.stop()
    assert list(temp.iterdir()) == []  # the directory went with the server


def test_a_metrics_token_is_required_when_set(tmp_path: Path) -> None:
    token = "scrape-me-4f9c2b"
    server = start_server(
        tmp_path, None, workers=1, extra_env={"CHATGATE_METRICS": "1", "CHATGATE_METRICS_TOKEN": token}
    )
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            r = httpx.get(f"{server.url}/metrics", headers=headers)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "not_authenticated"
        page = scrape(server.url, Authorization=f"Bearer {token}")
        assert sample(page, "chatgate_http_requests_total", route="/metrics", method="GET", status="401") == 3
        assert sample(page, "process_resident_memory_bytes") is not None  # one process: its own too
    finally:
        server.stop()
