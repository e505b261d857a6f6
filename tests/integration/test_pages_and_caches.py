"""Pages under a CSP without inline scripts, framing and CORS from the project's
``allowed_origins``, and no cache keeping a token, secret, key or user."""

from __future__ import annotations

import httpx

from conftest import Project
from jwt_tools import hs256, now

SHOP = "https://shop.example"


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2] for part in policy.split(";")}


def test_every_html_answer_has_a_csp_without_inline_scripts(api: httpx.Client, project: Project) -> None:
    pages = ["/", f"/p/{project.id}/", "/p/000000000000000000000000/", "/docs"]
    for path in pages:
        r = api.get(path)
        assert r.headers["content-type"].startswith("text/html"), path
        policy = directives(r)
        script = policy.get("script-src", policy["default-src"])
        assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, path
        assert "'unsafe-inline'" not in policy["default-src"], path
        assert "frame-ancestors" in policy, path
        assert r.headers["x-content-type-options"] == "nosniff"
    # Page templates are not served as files.
    assert api.get("/static/chat.html").status_code == 404
    assert "frame-ancestors 'none'" in api.get("/docs").headers["content-security-policy"]


def test_frame_ancestors_follow_allowed_origins(api: httpx.Client, project: Project) -> None:
    page = f"/p/{project.id}/"
    assert directives(api.get(page))["frame-ancestors"] == "*"  # documented default: any site may embed
    r = api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"allowed_origins": [SHOP, "http://127.0.0.1:3000"]}},
        headers=project.owner.auth,
    )
    assert r.status_code == 200, r.text
    assert directives(api.get(page))["frame-ancestors"] == f"'self' {SHOP} http://127.0.0.1:3000"
    for bad in (["https://shop.example/"], ["*"], ["shop.example"], ["javascript:alert(1)"], "https://x.y"):
        r = api.patch(
            f"/v1/projects/{project.id}", json={"settings": {"allowed_origins": bad}}, headers=project.owner.auth
        )
        assert r.status_code == 422, bad


def test_cors_answers_only_the_listed_origins(api: httpx.Client, project: Project) -> None:
    login = f"/v1/projects/{project.id}/auth/customer/login"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    # Nothing listed: no browser on another site gets an answer it may read.
    r = api.options(login, headers={"Origin": SHOP, **preflight})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"allowed_origins": [SHOP]}}, headers=project.owner.auth)
    r = api.options(login, headers={"Origin": SHOP, **preflight})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "Authorization" in r.headers["access-control-allow-headers"]
    r = api.options(login, headers={"Origin": "https://evil.example", **preflight})
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers

    token = hs256(project.secret, {"externalId": "cors-1", "iat": now()})
    r = api.post(login, json={"jwtToken": token}, headers={"Origin": SHOP})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SHOP
    r = api.get(f"/v1/projects/{project.id}/auth/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_nothing_that_carries_a_token_secret_key_or_user_may_be_cached(api: httpx.Client, project: Project) -> None:
    owner = project.owner.auth
    answers = [
        api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}),
        api.post(f"/v1/{project.id}/keys/generate", headers=owner),
        api.post(
            f"/v1/projects/{project.id}/apikeys",
            json={"name": "k", "roles": ["org.admin", "org.user"], "expires_in_days": None},
            headers=owner,
        ),
        api.get(f"/v1/projects/{project.id}/apikeys", headers=owner),
        api.get(f"/v1/projects/{project.id}/users", headers=owner),
        api.get(f"/v1/projects/{project.id}", headers=owner),
        api.post("/v1/auth/signin", json={"email": project.owner.email, "password": "wrong password 123"}),
        api.get(f"/v1/projects/{project.id}/auth/me"),
    ]
    key = answers[2].json()["key"]
    answers.append(api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"}))
    for r in answers:
        assert r.headers.get("cache-control") == "no-store", (r.request.url, r.status_code)
