"""Throttles (429 with Retry-After) on a server with tight limits, and the API description."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import PASSWORD, Server, fit_in_one_window, start_server, unique_email


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    rules = "signin_account=3/300,signin_ip=5/300,signup_ip=3/3600,anonymous_ip=4/60"
    srv = start_server(
        tmp_path_factory.mktemp("strict"),
        None,
        workers=1,
        extra_env={"CHATGATE_RATE_LIMITS": rules, "CHATGATE_TRUSTED_PROXIES": "127.0.0.1"},
    )
    yield srv
    srv.stop()


def test_signin_throttles_per_account_and_ip(strict_server: Server) -> None:
    with httpx.Client(base_url=strict_server.url, headers={"X-Forwarded-For": "203.0.113.1"}) as api:
        email = unique_email("throttle")
        fit_in_one_window(300)
        api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "firstname": "T", "lastname": "T"})
        statuses = [
            api.post("/v1/auth/signin", json={"email": email, "password": "wrong password!"}).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        r = api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 301
        assert r.json()["error"]["code"] == "rate_limited"
        # Another account from the same IP still has its own budget, until the IP budget runs out.
        other = api.post("/v1/auth/signin", json={"email": unique_email(), "password": PASSWORD})
        assert other.status_code == 429  # 6th attempt from this IP: signin_ip=5


def test_signups_and_anonymous_sign_ins_are_throttled_per_ip(strict_server: Server) -> None:
    with httpx.Client(base_url=strict_server.url, headers={"X-Forwarded-For": "203.0.113.2"}) as api:
        emails = [unique_email() for _ in range(4)]
        fit_in_one_window(3600)
        codes = [
            api.post(
                "/v1/auth/signup", json={"email": e, "password": PASSWORD, "firstname": "a", "lastname": "b"}
            ).status_code
            for e in emails
        ]
        assert codes == [200, 200, 200, 429]
        token = api.post("/v1/auth/signin", json={"email": emails[0], "password": PASSWORD}).json()["token"]
        pid = api.post("/v1/projects", json={"name": "p"}, headers={"Authorization": token}).json()["_id"]
        fit_in_one_window(60)
        codes = [api.post("/v1/auth/signinAnonymously", json={"id_project": pid}).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 200, 429]
        # Another address (through the trusted proxy) has its own budget.
        r = api.post("/v1/auth/signinAnonymously", json={"id_project": pid}, headers={"X-Forwarded-For": "203.0.113.3"})
        assert r.status_code == 200
        events = api.get(
            f"/v1/projects/{pid}/audit", params={"action": "end_user:created"}, headers={"Authorization": token}
        ).json()["events"]
        assert {e["ip"] for e in events} == {"203.0.113.2", "203.0.113.3"}


def test_body_limit_and_openapi(strict_server: Server) -> None:
    with httpx.Client(base_url=strict_server.url) as api:
        r = api.post(
            "/v1/auth/signup", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413
        spec = api.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        paths = spec["paths"]
        for path, method in [
            ("/v1/auth/signup", "post"),
            ("/v1/auth/signin", "post"),
            ("/v1/auth/signinAnonymously", "post"),
            ("/v1/auth/signinWithCustomToken", "post"),
            ("/v1/projects", "post"),
            ("/v1/projects", "get"),
            ("/v1/projects/{pid}", "patch"),
            ("/v1/{pid}/keys/generate", "post"),
            ("/v1/projects/{pid}/apikeys", "post"),
            ("/v1/projects/{pid}/apikeys/{key_id}", "delete"),
            ("/v1/auth/customer/settings", "get"),
            ("/v1/projects/{pid}/auth/external-code", "post"),
            ("/v1/projects/{pid}/auth/customer/login", "post"),
            ("/v1/projects/{pid}/auth/email/signup", "post"),
            ("/v1/projects/{pid}/auth/email/signin", "post"),
            ("/v1/projects/{pid}/auth/me", "get"),
            ("/v1/auth/logout", "post"),
            ("/v1/projects/{pid}/users", "get"),
            ("/v1/projects/{pid}/users/{user_ref}", "get"),
            ("/v1/projects/{pid}/audit", "get"),
        ]:
            assert method in paths.get(path, {}), (path, method)
        for page in ("/", "/p/{pid}/", "/widget.js", "/healthz"):
            assert "get" in paths[page], page
        login = paths["/v1/projects/{pid}/auth/external-code"]["post"]
        assert "401" in login["responses"] and "requestBody" in login
        docs = api.get("/docs")
        assert docs.status_code == 200 and "/v1/auth/signinWithCustomToken" in docs.text
