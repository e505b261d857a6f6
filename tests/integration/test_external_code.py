"""Contract §4.3: TypingMind's externalAuthCode exchange."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Db, Project
from jwt_tools import hs256, now


def exchange(api: httpx.Client, project: Project, code: str, **extra: Any) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code, **extra})


def test_user_object_creates_on_first_sight_with_metadata(api: httpx.Client, project: Project, db: Db) -> None:
    code = hs256(project.secret, {"user": {"id": "u-1", "email": "Ann@Example.com", "plan": "pro", "team": {"id": 7}}})
    r = exchange(api, project, code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["created"] is True
    assert body["token"].startswith("JWT ")
    user = body["user"]
    assert set(user) == {
        "_id",
        "externalId",
        "email",
        "emailverified",
        "firstname",
        "lastname",
        "fullName",
        "anonymous",
        "createdVia",
        "metadata",
        "createdAt",
        "lastSeenAt",
    }
    assert user["externalId"] == "u-1"
    assert user["email"] == "ann@example.com"
    assert user["emailverified"] is True  # vouched for by the signed code
    assert user["createdVia"] == "external_auth_code"
    assert user["metadata"] == {"plan": "pro", "team": {"id": 7}}
    assert user["anonymous"] is False

    again = exchange(api, project, code).json()
    assert again["created"] is False
    assert again["user"]["_id"] == user["_id"]
    assert db.count("end_users", "project_id = :p", p=project.id) == 1


def test_numeric_user_id_is_its_decimal_string(api: httpx.Client, project: Project) -> None:
    user = exchange(api, project, hs256(project.secret, {"user": {"id": 1234}})).json()["user"]
    assert user["externalId"] == "1234"
    again = exchange(api, project, hs256(project.secret, {"id": 1234})).json()
    assert again["user"]["_id"] == user["_id"]


def test_id_finds_by_external_id_then_by_chatgate_id(api: httpx.Client, project: Project) -> None:
    created = exchange(
        api, project, hs256(project.secret, {"user": {"id": "ext-9", "email": "nine@example.com"}})
    ).json()["user"]
    by_external = exchange(api, project, hs256(project.secret, {"id": "ext-9"})).json()
    assert by_external["user"]["_id"] == created["_id"] and by_external["created"] is False
    by_own_id = exchange(api, project, hs256(project.secret, {"id": created["_id"]})).json()
    assert by_own_id["user"]["_id"] == created["_id"]


def test_email_finds_and_id_wins_over_email(api: httpx.Client, project: Project) -> None:
    a = exchange(api, project, hs256(project.secret, {"user": {"id": "a", "email": "a@example.com"}})).json()["user"]
    b = exchange(api, project, hs256(project.secret, {"user": {"id": "b", "email": "b@example.com"}})).json()["user"]
    assert exchange(api, project, hs256(project.secret, {"email": "A@example.com"})).json()["user"]["_id"] == a["_id"]
    both = exchange(api, project, hs256(project.secret, {"id": "b", "email": "a@example.com"})).json()
    assert both["user"]["_id"] == b["_id"]


def test_unknown_user_under_id_or_email_is_404_and_creates_nothing(api: httpx.Client, project: Project, db: Db) -> None:
    for claims in ({"id": "nobody"}, {"email": "nobody@example.com"}):
        r = exchange(api, project, hs256(project.secret, claims))
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "user_not_found"
    assert db.count("end_users", "project_id = :p", p=project.id) == 0
    assert db.count("sessions", "project_id = :p", p=project.id) == 0


def test_node_example_token_is_accepted(api: httpx.Client, project: Project, node_mint: Any) -> None:
    code = node_mint("typingmind", project.secret, {"user": {"id": "node-user", "email": "node@example.com"}})
    r = exchange(api, project, code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["externalId"] == "node-user"


def test_require_exp_refuses_tokens_without_exp(api: httpx.Client, project: Project, db: Db) -> None:
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"require_exp": True}}, headers=project.owner.auth)
    r = exchange(api, project, hs256(project.secret, {"user": {"id": "no-exp"}}))
    assert r.status_code == 401
    assert r.json()["error"]["reason"] == "missing_claim"
    assert (
        exchange(api, project, hs256(project.secret, {"user": {"id": "with-exp"}, "exp": now() + 60})).status_code
        == 200
    )
    assert db.count("end_users", "external_id = 'no-exp'") == 0


def test_returning_user_profile_follows_the_token(api: httpx.Client, project: Project) -> None:
    exchange(api, project, hs256(project.secret, {"user": {"id": "p", "plan": "free", "firstname": "Pat"}}))
    user = exchange(
        api, project, hs256(project.secret, {"user": {"id": "p", "plan": "pro", "firstname": "Patricia"}})
    ).json()["user"]
    assert user["metadata"]["plan"] == "pro"
    assert user["firstname"] == "Patricia"


def test_email_taken_by_another_user_is_a_conflict(api: httpx.Client, project: Project, db: Db) -> None:
    exchange(api, project, hs256(project.secret, {"user": {"id": "first", "email": "shared@example.com"}}))
    r = exchange(api, project, hs256(project.secret, {"user": {"id": "second", "email": "shared@example.com"}}))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "identity_conflict"
    assert db.count("end_users", "external_id = 'second'") == 0


def test_external_jwt_off_is_403(api: httpx.Client, project: Project, db: Db) -> None:
    api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"auth_methods": {"external_jwt": False}}},
        headers=project.owner.auth,
    )
    r = exchange(api, project, hs256(project.secret, {"user": {"id": "off"}}))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth_method_disabled"
    assert db.count("end_users", "project_id = :p", p=project.id) == 0


def test_unknown_project_is_404(api: httpx.Client, project: Project) -> None:
    r = api.post(
        "/v1/projects/000000000000000000000000/auth/external-code",
        json={"externalAuthCode": hs256(project.secret, {"id": "x"})},
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "project_not_found"
