"""Contract §4.4: Kustomer's login({jwtToken}), auth/me and logout."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Db, Project
from jwt_tools import hs256, now


def login(api: httpx.Client, project: Project, token: str, **extra: Any) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token, **extra})


def test_email_wins_over_external_id(api: httpx.Client, project: Project, db: Db) -> None:
    by_id = login(api, project, hs256(project.secret, {"externalId": "k-1", "iat": now()})).json()["user"]
    assert by_id["externalId"] == "k-1" and by_id["createdVia"] == "customer_login"
    both = login(api, project, hs256(project.secret, {"externalId": "k-1", "email": "Kim@Example.com", "iat": now()}))
    assert both.status_code == 200
    user = both.json()["user"]
    # email alone identifies: a new customer, found or created by email; externalId ignored.
    assert user["_id"] != by_id["_id"]
    assert user["email"] == "kim@example.com"
    assert user["externalId"] is None
    again = login(
        api, project, hs256(project.secret, {"externalId": "other", "email": "kim@example.com", "iat": now()})
    ).json()
    assert again["user"]["_id"] == user["_id"]
    assert again["merged_conversations"] == 0
    assert db.count("end_users", "project_id = :p", p=project.id) == 2


def test_iat_is_required_and_must_be_fresh(api: httpx.Client, project: Project, db: Db) -> None:
    max_age, leeway = 900, 30
    cases = [
        ({"externalId": "a"}, "missing_claim"),
        ({"externalId": "a", "iat": now() - max_age - leeway - 5}, "iat_too_old"),
        ({"externalId": "a", "iat": now() + leeway + 60}, "not_yet_valid"),
        ({"externalId": "a", "iat": str(now())}, "malformed"),
        ({"iat": now()}, "missing_claim"),
    ]
    for claims, reason in cases:
        r = login(api, project, hs256(project.secret, claims))
        assert r.status_code == 401, claims
        assert r.json()["error"]["reason"] == reason, claims
    assert db.count("end_users", "project_id = :p", p=project.id) == 0
    # Just inside the window (and inside the leeway) is accepted.
    assert (
        login(api, project, hs256(project.secret, {"externalId": "a", "iat": now() - max_age - leeway + 5})).status_code
        == 200
    )
    assert login(api, project, hs256(project.secret, {"externalId": "b", "iat": now() + leeway - 5})).status_code == 200


def test_max_token_age_is_a_project_setting(api: httpx.Client, project: Project) -> None:
    api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"max_token_age_seconds": 60, "leeway_seconds": 0}},
        headers=project.owner.auth,
    )
    r = login(api, project, hs256(project.secret, {"externalId": "a", "iat": now() - 120}))
    assert r.json()["error"]["reason"] == "iat_too_old"


def test_kustomer_node_sample(api: httpx.Client, project: Project, node_mint: Any) -> None:
    token = node_mint("kustomer", project.secret, {"externalId": "user_id", "email": "sample@example.com"})
    r = login(api, project, token)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == "sample@example.com"


def test_me_is_logged_in_and_logout_revokes_at_once(api: httpx.Client, project: Project) -> None:
    body = login(
        api, project, hs256(project.secret, {"externalId": "me-1", "email": "me@example.com", "iat": now()})
    ).json()
    auth = {"Authorization": body["token"]}
    me = api.get(f"/v1/projects/{project.id}/auth/me", headers=auth)
    assert me.status_code == 200
    assert me.json()["loggedIn"] is True and me.json()["user"]["_id"] == body["user"]["_id"]
    # Kustomer.isLoggedIn({email}) for this user and for someone else.
    assert (
        api.get(f"/v1/projects/{project.id}/auth/me", params={"email": "ME@example.com"}, headers=auth).json()[
            "loggedIn"
        ]
        is True
    )
    assert (
        api.get(f"/v1/projects/{project.id}/auth/me", params={"email": "you@example.com"}, headers=auth).json()[
            "loggedIn"
        ]
        is False
    )
    assert api.post("/v1/auth/logout", headers=auth).status_code == 200
    r = api.get(f"/v1/projects/{project.id}/auth/me", headers=auth)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_me_refuses_sessions_of_other_projects_and_staff(api: httpx.Client, project: Project) -> None:
    body = login(api, project, hs256(project.secret, {"externalId": "x", "iat": now()})).json()
    other = api.post("/v1/projects", json={"name": "Other"}, headers=project.owner.auth).json()["_id"]
    assert api.get(f"/v1/projects/{other}/auth/me", headers={"Authorization": body["token"]}).status_code == 401
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=project.owner.auth).status_code == 401
    # And an end user's session is no staff session.
    assert api.get(f"/v1/projects/{project.id}/users", headers={"Authorization": body["token"]}).status_code == 403


def test_an_expired_session_is_refused(api: httpx.Client, project: Project, db: Db) -> None:
    body = login(api, project, hs256(project.secret, {"externalId": "exp-1", "iat": now()})).json()
    auth = {"Authorization": body["token"]}
    # The stored session decides, not only the token's own exp. (Sessions never change their expiry,
    # so a PostgreSQL process keeps a copy once read: the row is changed before any use.)
    db.execute(
        "UPDATE sessions SET expires_at = '2000-01-01 00:00:00.000000' WHERE subject_id = :u", u=body["user"]["_id"]
    )
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=auth).status_code == 401
    again = login(api, project, hs256(project.secret, {"externalId": "exp-1", "iat": now()})).json()
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": again["token"]}).status_code == 200
