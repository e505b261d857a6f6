"""TypingMind's Node snippet and admin habits against Chatgate: metadata is only what the token carried
(also for users stored before), the users list shows origin and metadata, and isLoggedIn after a logout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from chatgate.storage.migrate import upgrade
from conftest import Db, Project, unique_email


def exchange(api: httpx.Client, project: Project, code: str) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})


def stored_metadata(db: Db, user_id: str) -> Any:
    (value,) = db.rows("SELECT metadata FROM end_users WHERE id = :u", u=user_id)[0]
    return json.loads(value) if isinstance(value, str) else value


def test_metadata_is_only_what_the_token_carried(api: httpx.Client, project: Project, db: Db, node_mint: Any) -> None:
    payload = {
        "user": {
            "id": "tm-1",
            "email": "Ann@Example.com",
            "firstname": "Ann",
            "last_name": "Lee",
            "plan": "pro",
            "other": "anything",
        }
    }
    r = exchange(api, project, node_mint("typingmind", project.secret, payload))
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert (user["firstname"], user["lastname"], user["fullName"]) == ("Ann", "Lee", "Ann Lee")
    assert user["metadata"] == {"plan": "pro", "other": "anything"}
    assert stored_metadata(db, user["_id"]) == {"plan": "pro", "other": "anything"}

    # The admin's users list and a user's page show where each came from and what its token carried.
    visitor = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id, "firstname": "Guest"}).json()
    users = f"/v1/projects/{project.id}/users"
    listed = {u["_id"]: u for u in api.get(users, headers=project.owner.auth).json()["users"]}
    assert (listed[user["_id"]]["createdVia"], listed[user["_id"]]["metadata"]) == (
        "external_auth_code",
        {"plan": "pro", "other": "anything"},
    )
    # A visitor's name is its name, not metadata: nothing it typed is stored as if a token carried it.
    assert (listed[visitor["user"]["_id"]]["createdVia"], listed[visitor["user"]["_id"]]["metadata"]) == (
        "anonymous",
        {},
    )
    only_codes = api.get(users, params={"created_via": "external_auth_code"}, headers=project.owner.auth).json()
    assert [u["_id"] for u in only_codes["users"]] == [user["_id"]]
    one = api.get(f"{users}/tm-1", headers=project.owner.auth).json()
    assert (one["createdVia"], one["metadata"]) == ("external_auth_code", {"plan": "pro", "other": "anything"})


def test_is_logged_in_answers_no_after_a_logout(api: httpx.Client, project: Project, node_mint: Any) -> None:
    email = unique_email("tm")
    code = node_mint("typingmind", project.secret, {"user": {"id": "tm-out", "email": email}})
    signed_in = exchange(api, project, code).json()
    auth = {"Authorization": signed_in["token"]}
    me = f"/v1/projects/{project.id}/auth/me"
    assert api.get(me, params={"email": email}, headers=auth).json()["loggedIn"] is True
    assert api.get(me, params={"externalId": "tm-out"}, headers=auth).json()["loggedIn"] is True
    assert api.get(me, params={"externalId": "someone"}, headers=auth).json() == {"loggedIn": False, "user": None}

    assert api.post("/v1/auth/logout", headers=auth).status_code == 200
    for query in ({"email": email}, {"externalId": "tm-out"}, {"email": email, "externalId": "tm-out"}):
        r = api.get(me, params=query, headers=auth)
        assert (r.status_code, r.json()) == (200, {"loggedIn": False, "user": None}), query
    assert api.get(me, params={"email": email}).json() == {"loggedIn": False, "user": None}
    bare = api.get(me, headers=auth)
    assert (bare.status_code, bare.json()["error"]["code"]) == (401, "not_authenticated")
    malformed = api.get(me, params={"email": "not an email"}, headers=auth)
    assert malformed.status_code == 422


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_users_stored_before_keep_only_what_their_token_carried(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """Revision 0007 takes the names earlier releases copied into metadata out of it, and lets
    visitors hold an email beside the user who owns it."""
    if backend == "postgresql":
        url = request.getfixturevalue("scratch_postgres").url
    else:
        url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    upgrade(url, "0006")
    engine = create_engine(url)
    rows = [
        ("u1", "external_auth_code", "a@example.com", False, {"firstname": "Ann", "last_name": "Lee", "plan": "pro"}),
        ("u2", "custom_token", "b@example.com", False, {"first_name": "kept: no claim Chatgate reads"}),
        ("u3", "external_auth_code", "c@example.com", False, {"team": 7}),
        ("u4", "external_auth_code", None, False, {}),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO staff_accounts (id, email, firstname, lastname, email_verified, password_hash,"
                    " created_at, updated_at) VALUES ('s1', 's@example.com', 'S', 'S', false, 'x', :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO projects (id, name, settings, created_at, updated_at) VALUES ('p1', 'P', '{}', :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
            for user_id, via, email, anonymous, metadata in rows:
                conn.execute(
                    text(
                        "INSERT INTO end_users (id, project_id, email, email_verified, anonymous, created_via,"
                        " metadata, created_at) VALUES (:id, 'p1', :email, true, :anonymous, :via, :metadata, :t)"
                    ),
                    {
                        "id": user_id,
                        "email": email,
                        "anonymous": anonymous,
                        "via": via,
                        "metadata": json.dumps(metadata),
                        "t": "2026-01-01 00:00:00",
                    },
                )
        upgrade(url)
        with engine.begin() as conn:
            found = {
                user_id: json.loads(value) if isinstance(value, str) else value
                for user_id, value in conn.execute(text("SELECT id, metadata FROM end_users")).all()
            }
            assert found == {
                "u1": {"plan": "pro"},
                "u2": {"first_name": "kept: no claim Chatgate reads"},
                "u3": {"team": 7},
                "u4": {},
            }
            insert = text(
                "INSERT INTO end_users (id, project_id, email, email_verified, anonymous, created_via, metadata,"
                " created_at) VALUES (:id, 'p1', 'a@example.com', false, :anonymous, :via, '{}', :t)"
            )
            # A visitor may hold an identified user's email; another identified user may not.
            conn.execute(insert, {"id": "v1", "anonymous": True, "via": "anonymous", "t": "2026-01-02 00:00:00"})
        with pytest.raises(Exception, match=r"(?i)unique"), engine.begin() as conn:
            conn.execute(insert, {"id": "u5", "anonymous": False, "via": "email", "t": "2026-01-02 00:00:00"})
    finally:
        engine.dispose()
