"""Contract §4.6 user listing and lookup, and the audit log."""

from __future__ import annotations

import httpx

from conftest import Project
from jwt_tools import hs256, now


def test_listing_filters_pages_and_counts_seats(api: httpx.Client, project: Project) -> None:
    auth = project.owner.auth
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 50}}, headers=auth)
    for i in range(5):
        api.post(
            f"/v1/projects/{project.id}/auth/external-code",
            json={
                "externalAuthCode": hs256(
                    project.secret, {"user": {"id": f"ext-{i}", "email": f"person{i}@example.com"}}
                )
            },
        )
    api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(project.secret, {"externalId": "kus", "iat": now()})},
    )
    api.post("/v1/auth/signinAnonymously", json={"id_project": project.id})

    everyone = api.get(f"/v1/projects/{project.id}/users", headers=auth).json()
    assert len(everyone["users"]) == 7
    assert everyone["seats"] == {"used": 6, "limit": 50}
    assert everyone["next_cursor"] is None

    via = api.get(f"/v1/projects/{project.id}/users", params={"created_via": "external_auth_code"}, headers=auth).json()
    assert {u["externalId"] for u in via["users"]} == {f"ext-{i}" for i in range(5)}
    assert api.get(f"/v1/projects/{project.id}/users", params={"created_via": "anonymous"}, headers=auth).json()[
        "users"
    ][0]["anonymous"]
    assert (
        api.get(f"/v1/projects/{project.id}/users", params={"created_via": "pigeon"}, headers=auth).status_code == 422
    )

    found = api.get(f"/v1/projects/{project.id}/users", params={"q": "PERSON3"}, headers=auth).json()["users"]
    assert [u["externalId"] for u in found] == ["ext-3"]
    assert api.get(f"/v1/projects/{project.id}/users", params={"q": "%"}, headers=auth).json()["users"] == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/v1/projects/{project.id}/users", params=params, headers=auth).json()
        seen += [u["_id"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert api.get(f"/v1/projects/{project.id}/users", params={"limit": 0}, headers=auth).status_code == 422


def test_lookup_by_id_or_external_id(api: httpx.Client, project: Project) -> None:
    user = api.post(
        f"/v1/projects/{project.id}/auth/external-code",
        json={"externalAuthCode": hs256(project.secret, {"user": {"id": "look-me-up"}})},
    ).json()["user"]
    auth = project.owner.auth
    assert api.get(f"/v1/projects/{project.id}/users/{user['_id']}", headers=auth).json()["_id"] == user["_id"]
    assert api.get(f"/v1/projects/{project.id}/users/look-me-up", headers=auth).json()["_id"] == user["_id"]
    r = api.get(f"/v1/projects/{project.id}/users/nobody", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"


def test_audit_log_records_auth_events_without_secrets(api: httpx.Client, project: Project) -> None:
    auth = project.owner.auth
    good = hs256(project.secret, {"user": {"id": "audited"}})
    forged = hs256("x" * 43, {"user": {"id": "audited"}})
    api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": good})
    api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": forged})
    key = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "k", "roles": ["org.user"], "expires_in_days": None},
        headers=auth,
    ).json()
    api.delete(f"/v1/projects/{project.id}/apikeys/{key['id']}", headers=auth)

    r = api.get(f"/v1/projects/{project.id}/audit", headers=auth)
    assert r.status_code == 200
    events = r.json()["events"]
    actions = [e["action"] for e in events]
    for expected in (
        "project:signing_key:generated",
        "end_user:created",
        "end_user:signin:succeeded",
        "end_user:token:rejected",
        "project:api_key:created",
        "project:api_key:revoked",
    ):
        assert expected in actions, (expected, actions)
    rejected = next(e for e in events if e["action"] == "end_user:token:rejected")
    assert rejected["reason"] == "bad_signature"
    assert rejected["ip"] == "127.0.0.1"
    text = r.text
    for secret in (project.secret, good, forged, key["key"]):
        assert secret not in text
    only = api.get(f"/v1/projects/{project.id}/audit", params={"action": "end_user:created"}, headers=auth).json()[
        "events"
    ]
    assert {e["action"] for e in only} == {"end_user:created"}
