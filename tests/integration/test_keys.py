"""Contract §3: signing secrets, API keys and Kustomer's customer settings."""

from __future__ import annotations

import httpx

from conftest import Db, Project, sign_up_staff
from jwt_tools import hs256
from live_tools import customer, say, start


def test_generate_rotates_the_secret_and_the_old_one_stops_at_once(api: httpx.Client, project: Project) -> None:
    old = project.secret
    assert len(old) >= 43  # 256 bits, URL-safe
    code = hs256(old, {"user": {"id": "rotating"}})
    assert api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code}).status_code == 200
    r = api.post(f"/v1/{project.id}/keys/generate", headers=project.owner.auth)
    new = r.json()["jwtSecret"]
    assert new != old
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert r.status_code == 401
    assert r.json()["error"]["reason"] == "bad_signature"
    fresh = hs256(new, {"user": {"id": "rotating"}})
    assert (
        api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": fresh}).status_code == 200
    )


def test_secrets_are_stored_encrypted(project: Project, db: Db) -> None:
    sealed = db.rows("SELECT secret_sealed FROM projects WHERE id = :p", p=project.id)[0][0]
    assert project.secret.encode() not in bytes(sealed)


def test_api_key_lifecycle(api: httpx.Client, project: Project, db: Db) -> None:
    auth = project.owner.auth
    r = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "Chat Settings", "roles": ["org.admin", "org.user"], "expires_in_days": None},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) >= {"id", "name", "roles", "expiresAt", "key"}
    assert created["expiresAt"] is None
    key = created["key"]
    # Stored hashed: the key itself is nowhere in the database.
    assert db.count("api_keys", "key_hash = :k", k=key) == 0
    listed = api.get(f"/v1/projects/{project.id}/apikeys", headers=auth).json()["apikeys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in str(listed)
    assert listed[0]["lastUsedAt"] is None

    r = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert r.json() == {"data": {"type": "customer_settings", "attributes": {"secret": project.secret}}}
    assert api.get(f"/v1/projects/{project.id}/apikeys", headers=auth).json()["apikeys"][0]["lastUsedAt"] is not None

    r = api.delete(f"/v1/projects/{project.id}/apikeys/{created['id']}", headers=auth)
    assert r.status_code == 200
    r = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert api.delete(f"/v1/projects/{project.id}/apikeys/{created['id']}", headers=auth).status_code == 404


def test_customer_settings_needs_both_roles_and_a_real_key(api: httpx.Client, project: Project) -> None:
    auth = project.owner.auth
    user_only = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "u", "roles": ["org.user"], "expires_in_days": 30},
        headers=auth,
    ).json()
    assert user_only["expiresAt"] is not None
    r = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {user_only['key']}"})
    assert r.status_code == 403
    assert project.secret not in r.text
    for header in (
        {},
        {"Authorization": "Bearer cgk_000000000000_nope"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"JWT {user_only['key']}"},
    ):
        assert api.get("/v1/auth/customer/settings", headers=header).status_code == 401, header
    # Never from the query string.
    r = api.get("/v1/auth/customer/settings", params={"api_key": user_only["key"]})
    assert r.status_code == 401


def test_customer_settings_generates_a_secret_when_the_project_has_none(api: httpx.Client) -> None:
    owner = sign_up_staff(api, "fresh")
    pid = api.post("/v1/projects", json={"name": "No secret yet"}, headers=owner.auth).json()["_id"]
    key = api.post(
        f"/v1/projects/{pid}/apikeys",
        json={"name": "k", "roles": ["org.admin", "org.user"], "expires_in_days": None},
        headers=owner.auth,
    ).json()["key"]
    first = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"}).json()
    secret = first["data"]["attributes"]["secret"]
    assert len(secret) >= 43
    again = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"}).json()
    assert again["data"]["attributes"]["secret"] == secret


def test_api_key_validation(api: httpx.Client, project: Project, db: Db) -> None:
    before = db.count("api_keys")
    for body in (
        {"name": "x", "roles": ["org.root"], "expires_in_days": None},
        {"name": "x", "roles": [], "expires_in_days": None},
        {"name": "x", "roles": ["org.user"], "expires_in_days": "30"},
        {"name": "x", "roles": ["org.user"], "expires_in_days": 0},
        {"roles": ["org.user"]},
    ):
        r = api.post(f"/v1/projects/{project.id}/apikeys", json=body, headers=project.owner.auth)
        assert r.status_code == 422, body
    assert db.count("api_keys") == before


def test_an_expired_api_key_is_refused(api: httpx.Client, project: Project, db: Db) -> None:
    created = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "short-lived", "roles": ["org.admin", "org.user"], "expires_in_days": 1},
        headers=project.owner.auth,
    ).json()
    bearer = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/auth/customer/settings", headers=bearer).status_code == 200
    db.execute("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00.000000' WHERE id = :id", id=created["id"])
    r = api.get("/v1/auth/customer/settings", headers=bearer)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_last_used_at_follows_every_accepted_use_of_a_key(api: httpx.Client, project: Project) -> None:
    def last_used() -> dict[str, str | None]:
        keys = api.get(f"/v1/projects/{project.id}/apikeys", headers=project.owner.auth).json()["apikeys"]
        return {k["name"]: k["lastUsedAt"] for k in keys}

    def make(name: str, roles: list[str]) -> dict[str, str]:
        r = api.post(
            f"/v1/projects/{project.id}/apikeys",
            json={"name": name, "roles": roles, "expires_in_days": None},
            headers=project.owner.auth,
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['key']}"}

    reader, poster = make("reader", ["org.user"]), make("poster", ["org.user"])
    settings_only = make("admin", ["org.admin"])
    users = f"/v1/projects/{project.id}/users"
    # A refused use does not count.
    assert api.get(users, headers=settings_only).status_code == 403
    assert last_used() == {"reader": None, "poster": None, "admin": None}

    assert api.get(users, headers=reader).status_code == 200
    conversation = start(api, project.id, customer(api, project).auth)
    say(api, project.id, conversation["id"], poster, "from the backend")
    seen = last_used()
    assert seen["reader"] is not None and seen["poster"] is not None and seen["admin"] is None, seen
