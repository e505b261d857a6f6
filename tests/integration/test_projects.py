"""Contract §2: projects, settings, roles."""

from __future__ import annotations

import httpx

from conftest import Db, Project, Staff, sign_up_staff

DEFAULTS = {
    "seat_limit": None,
    "auth_methods": {"anonymous": True, "email": True, "external_jwt": True},
    "require_exp": False,
    "max_token_age_seconds": 900,
    "leeway_seconds": 30,
    "accepted_audiences": [],
    "allowed_origins": [],
}


def test_create_project_makes_the_caller_its_owner(api: httpx.Client, owner: Staff, db: Db) -> None:
    r = api.post("/v1/projects", json={"name": "Help desk"}, headers=owner.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["_id"] == body["id"]
    assert body["name"] == "Help desk"
    assert body["settings"] == DEFAULTS
    assert body["createdAt"].endswith("Z")
    assert (
        db.count("memberships", "project_id = :p AND staff_id = :s AND role = 'owner'", p=body["id"], s=owner.id) == 1
    )
    listed = api.get("/v1/projects", headers=owner.auth).json()
    assert [p["_id"] for p in listed] == [body["_id"]]


def test_settings_change_merges_auth_methods_and_validates(api: httpx.Client, project: Project) -> None:
    auth = project.owner.auth
    r = api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"seat_limit": 3, "auth_methods": {"email": False}}},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    settings = r.json()["settings"]
    assert settings["seat_limit"] == 3
    assert settings["auth_methods"] == {"anonymous": True, "email": False, "external_jwt": True}
    assert api.get(f"/v1/projects/{project.id}", headers=auth).json()["settings"] == settings
    bad = [
        {"seat_limit": -1},
        {"seat_limit": "3"},
        {"auth_methods": {"carrier_pigeon": True}},
        {"require_exp": "yes"},
        {"leeway_seconds": 100000},
        {"accepted_audiences": "https://x"},
        {"no_such_setting": 1},
    ]
    for change in bad:
        r = api.patch(f"/v1/projects/{project.id}", json={"settings": change}, headers=auth)
        assert r.status_code == 422, change
        assert r.json()["error"]["fields"], change
    assert api.get(f"/v1/projects/{project.id}", headers=auth).json()["settings"] == settings


def test_other_staff_cannot_see_or_change_a_project(api: httpx.Client, project: Project) -> None:
    stranger = sign_up_staff(api, "stranger")
    for method, path in [
        ("GET", f"/v1/projects/{project.id}"),
        ("PATCH", f"/v1/projects/{project.id}"),
        ("POST", f"/v1/{project.id}/keys/generate"),
        ("GET", f"/v1/projects/{project.id}/users"),
    ]:
        r = api.request(method, path, json={"settings": {}} if method == "PATCH" else None, headers=stranger.auth)
        assert r.status_code == 404, (method, path, r.text)
    assert api.get("/v1/projects", headers=stranger.auth).json() == []


def test_admins_manage_but_only_owners_read_the_audit_log(api: httpx.Client, project: Project) -> None:
    admin = sign_up_staff(api, "admin")
    r = api.post(
        f"/v1/projects/{project.id}/members", json={"email": admin.email, "role": "admin"}, headers=project.owner.auth
    )
    assert r.status_code == 201
    assert api.get(f"/v1/projects/{project.id}", headers=admin.auth).json()["role"] == "admin"
    assert (
        api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 10}}, headers=admin.auth).status_code
        == 200
    )
    r = api.get(f"/v1/projects/{project.id}/audit", headers=admin.auth)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "insufficient_role"
    r = api.post(f"/v1/projects/{project.id}/members", json={"email": admin.email, "role": "owner"}, headers=admin.auth)
    assert r.status_code == 403


def test_unknown_routes_and_methods_answer_json(api: httpx.Client) -> None:
    r = api.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = api.delete("/v1/auth/signin")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_allowed_origins_are_kept_as_browsers_send_them(api: httpx.Client, project: Project) -> None:
    """A default port is never in a browser's Origin header: an origin listed with one must still match."""
    change = {"allowed_origins": ["HTTPS://Shop.Example:443", "http://localhost:80", "http://localhost:8080"]}
    r = api.patch(f"/v1/projects/{project.id}", json={"settings": change}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["allowed_origins"] == [
        "https://shop.example",
        "http://localhost",
        "http://localhost:8080",
    ]
    preflight = {"Origin": "http://localhost", "Access-Control-Request-Method": "GET"}
    assert api.options(f"/v1/projects/{project.id}/auth/me", headers=preflight).status_code == 204
