"""CHATGATE_DB_IN_THREADS: the same service calls from worker threads (for a distant database)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import Server, make_project, sign_up_staff, start_server
from jwt_tools import hs256, now


@pytest.fixture(scope="module")
def threaded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("threads"), None, extra_env={"CHATGATE_DB_IN_THREADS": "1"})
    yield srv
    srv.stop()


def test_sign_in_and_logout_from_worker_threads(threaded_server: Server) -> None:
    with httpx.Client(base_url=threaded_server.url) as api:
        project = make_project(api, sign_up_staff(api))
        login = api.post(
            f"/v1/projects/{project.id}/auth/customer/login",
            json={"jwtToken": hs256(project.secret, {"externalId": "t-1", "iat": now()})},
        )
        assert login.status_code == 200
        auth = {"Authorization": login.json()["token"]}
        assert api.get(f"/v1/projects/{project.id}/auth/me", headers=auth).json()["user"]["externalId"] == "t-1"
        assert api.post("/v1/auth/logout", headers=auth).status_code == 200
        assert api.get(f"/v1/projects/{project.id}/auth/me", headers=auth).status_code == 401
