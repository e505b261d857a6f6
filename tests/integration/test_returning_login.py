"""A returning user's token login: what it writes and what it changes, whichever way storage records it.

On PostgreSQL a returning login that changes nothing on the user but
``lastSeenAt`` is found and recorded in one statement; every other login goes
the long way. These tests hold both ways to the same outcome: each login is a
session and an audit row of its own, new names and metadata are taken at
once, ``lastSeenAt`` moves to the minute.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conftest import Db, Project
from jwt_tools import hs256

SIGNED_IN = "end_user:signin:succeeded"


def exchange(api: httpx.Client, project: Project, user: dict[str, Any]) -> dict[str, Any]:
    code = hs256(project.secret, {"user": user})
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def me(api: httpx.Client, project: Project, token: str) -> httpx.Response:
    return api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": token})


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_each_returning_login_is_a_session_and_an_audit_row_of_its_own(
    api: httpx.Client, project: Project, db: Db
) -> None:
    logins = [exchange(api, project, {"id": "ret-1", "email": "ret1@example.com"}) for _ in range(3)]
    user_id = logins[0]["user"]["_id"]
    assert [login["created"] for login in logins] == [True, False, False]
    assert {login["user"]["_id"] for login in logins} == {user_id}
    assert len({login["token"] for login in logins}) == 3
    assert db.count("sessions", "subject_id = :u AND method = 'external_auth_code'", u=user_id) == 3
    for login in logins:
        assert me(api, project, login["token"]).json()["user"]["_id"] == user_id

    r = api.get(f"/v1/projects/{project.id}/audit", params={"action": SIGNED_IN}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    events = [e for e in r.json()["events"] if e["subjectId"] == user_id]
    assert len(events) == 3
    for event in events:
        assert (event["actorType"], event["actorId"]) == ("end_user", user_id)
        assert event["details"]["method"] == "external_auth_code"
    assert sorted(e["details"]["created"] for e in events) == [False, False, True]

    # One logout ends its own session only.
    r = api.post("/v1/auth/logout", headers={"Authorization": logins[1]["token"]})
    assert r.status_code in (200, 204), r.text
    assert me(api, project, logins[1]["token"]).status_code == 401
    assert me(api, project, logins[2]["token"]).status_code == 200


def test_new_names_and_metadata_are_taken_at_the_next_login(api: httpx.Client, project: Project, db: Db) -> None:
    first = exchange(api, project, {"id": "ret-2", "firstname": "Ada", "lastname": "King", "plan": "free"})
    token = first["token"]
    renamed = exchange(api, project, {"id": "ret-2", "firstname": "Grace", "lastname": "King", "plan": "free"})
    assert (renamed["user"]["firstname"], renamed["user"]["lastname"]) == ("Grace", "King")
    upgraded = exchange(api, project, {"id": "ret-2", "firstname": "Grace", "lastname": "King", "plan": "pro"})
    assert upgraded["user"]["metadata"] == {"plan": "pro"}
    relabelled = exchange(api, project, {"id": "ret-2", "firstname": "Grace", "lastname": "Hopper", "plan": "pro"})
    assert relabelled["user"]["lastname"] == "Hopper"
    # A token without names keeps the stored ones.
    bare = exchange(api, project, {"id": "ret-2"})
    assert (bare["user"]["firstname"], bare["user"]["lastname"]) == ("Grace", "Hopper")
    assert bare["user"]["metadata"] == {"plan": "pro"}

    [(firstname, lastname)] = db.rows(
        "SELECT firstname, lastname FROM end_users WHERE project_id = :p AND external_id = 'ret-2'", p=project.id
    )
    assert (firstname, lastname) == ("Grace", "Hopper")
    seen = me(api, project, token).json()["user"]  # the first session sees the user as it is now
    assert (seen["firstname"], seen["lastname"], seen["metadata"]) == ("Grace", "Hopper", {"plan": "pro"})


def test_metadata_that_only_python_holds_equal_is_still_replaced(api: httpx.Client, project: Project) -> None:
    """JSON's true, 1 and 1.0 are different values (Python's == holds them equal)."""
    token = exchange(api, project, {"id": "ret-5", "trial": 1})["token"]
    for value in (True, 1, 1.0, [True], {"n": 0}, {"n": False}):
        metadata = exchange(api, project, {"id": "ret-5", "trial": value})["user"]["metadata"]
        assert json.dumps(metadata) == json.dumps({"trial": value})
        stored = me(api, project, token).json()["user"]["metadata"]  # what the row holds, from another session
        assert json.dumps(stored) == json.dumps({"trial": value})


def test_last_seen_moves_to_the_minute(api: httpx.Client, project: Project, db: Db) -> None:
    first = exchange(api, project, {"id": "ret-3"})
    user_id, token = first["user"]["_id"], first["token"]
    stamped = first["user"]["lastSeenAt"]
    assert me(api, project, token).json()["user"]["lastSeenAt"] == stamped
    assert exchange(api, project, {"id": "ret-3"})["user"]["lastSeenAt"] == stamped  # within the minute

    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    db.execute("UPDATE end_users SET last_seen_at = :t WHERE id = :id", t=long_ago, id=user_id)
    before = datetime.now(UTC)
    returned = exchange(api, project, {"id": "ret-3"})["user"]
    moved = instant(returned["lastSeenAt"])
    assert moved >= before - timedelta(seconds=1)
    [(stored,)] = db.rows("SELECT last_seen_at FROM end_users WHERE id = :id", id=user_id)
    stored = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    assert stored.replace(tzinfo=UTC) > long_ago + timedelta(minutes=4)
    # The first session (another device) shows the visit too.
    assert me(api, project, token).json()["user"]["lastSeenAt"] == returned["lastSeenAt"]


def test_metadata_stored_in_a_form_a_token_cannot_send_is_simply_replaced(
    api: httpx.Client, project: Project, db: Db
) -> None:
    """A NUL escape is refused in tokens but may sit in rows written before that rule (or by hand); comparing
    it with a token's metadata must not fail the login."""
    user_id = exchange(api, project, {"id": "ret-4", "plan": "free"})["user"]["_id"]
    stored = "CAST(:m AS json)" if db.engine.dialect.name == "postgresql" else ":m"
    db.execute(f"UPDATE end_users SET metadata = {stored} WHERE id = :id", m='{"note": "x\\u0000y"}', id=user_id)
    again = exchange(api, project, {"id": "ret-4", "plan": "pro"})
    assert again["user"]["_id"] == user_id
    assert again["user"]["metadata"] == {"plan": "pro"}
