"""The staff API behind the admin panel: who am I, members, a user's sessions, signing a user out
everywhere, and the token tester, on SQLite and PostgreSQL (two worker processes each).

Every refusal is checked for what it leaves behind: the rows a test counts
before are the rows it counts after.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import (
    PASSWORD,
    Db,
    Project,
    Server,
    Staff,
    fit_in_one_window,
    make_project,
    sign_up_staff,
    start_server,
    unique_email,
)
from doors import worker_doors
from jwt_tools import hs256, now, raw_token
from live_tools import WITHIN, EndUser, api_key, conversations_path, customer, open_live_on, run, visitor


def add_member(api: httpx.Client, project: Project, role: str = "admin", prefix: str = "member") -> Staff:
    member = sign_up_staff(api, prefix)
    r = api.post(
        f"/v1/projects/{project.id}/members", json={"email": member.email, "role": role}, headers=project.owner.auth
    )
    assert r.status_code == 201, r.text
    return member


def members(api: httpx.Client, project_id: str, staff: Staff) -> list[dict[str, Any]]:
    r = api.get(f"/v1/projects/{project_id}/members", headers=staff.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["members"])


def remove(api: httpx.Client, project_id: str, staff_id: str, by: Staff) -> httpx.Response:
    return api.delete(f"/v1/projects/{project_id}/members/{staff_id}", headers=by.auth)


def error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def session_id(user: EndUser) -> str:
    """The stored session a login's token names (its ``sid`` claim; the token is the server's, not ours)."""
    payload = user.bare.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])


def audit_actions(api: httpx.Client, project: Project, action: str) -> list[dict[str, Any]]:
    r = api.get(f"/v1/projects/{project.id}/audit", params={"action": action}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


# -- GET /v1/staff/me ----------------------------------------------------------------


def test_staff_me_is_the_calling_account_and_refuses_everyone_else(api: httpx.Client, project: Project) -> None:
    r = api.get("/v1/staff/me", headers=project.owner.auth)
    assert r.status_code == 200, r.text
    me = project.owner
    assert r.json() == {"_id": me.id, "email": me.email, "firstname": "Ada", "lastname": "Lovelace"}
    assert r.headers["cache-control"] == "no-store"

    assert error(api.get("/v1/staff/me")) == (401, "not_authenticated")
    assert error(api.get("/v1/staff/me", headers=visitor(api, project.id).auth)) == (403, "forbidden")
    key = {"Authorization": f"Bearer {api_key(api, project, ['org.admin', 'org.user'])}"}
    assert error(api.get("/v1/staff/me", headers=key)) == (401, "not_authenticated")
    assert api.post("/v1/auth/logout", headers=project.owner.auth).status_code == 200
    assert error(api.get("/v1/staff/me", headers=project.owner.auth)) == (401, "not_authenticated")


# -- members -------------------------------------------------------------------------------


def test_every_member_reads_the_members_in_the_order_they_were_added(api: httpx.Client, project: Project) -> None:
    admin = add_member(api, project, "admin", "admin")
    second_owner = add_member(api, project, "owner", "owner2")
    listed = members(api, project.id, admin)
    assert [m["staff_id"] for m in listed] == [project.owner.id, admin.id, second_owner.id]
    assert [m["role"] for m in listed] == ["owner", "admin", "owner"]
    assert listed[1] == {
        "staff_id": admin.id,
        "email": admin.email,
        "firstname": "Ada",
        "lastname": "Lovelace",
        "role": "admin",
        "added_at": listed[1]["added_at"],
    }
    assert all(m["added_at"].endswith("Z") for m in listed)
    assert listed == sorted(listed, key=lambda m: m["added_at"])
    assert members(api, project.id, second_owner) == listed

    # A role change keeps the member's place.
    r = api.post(
        f"/v1/projects/{project.id}/members", json={"email": admin.email, "role": "owner"}, headers=project.owner.auth
    )
    assert r.status_code == 201, r.text
    assert [(m["staff_id"], m["role"]) for m in members(api, project.id, admin)] == [
        (project.owner.id, "owner"),
        (admin.id, "owner"),
        (second_owner.id, "owner"),
    ]

    stranger = sign_up_staff(api, "stranger")
    other = make_project(api, stranger)
    assert error(api.get(f"/v1/projects/{project.id}/members", headers=stranger.auth)) == (404, "project_not_found")
    assert error(api.get(f"/v1/projects/{other.id}/members", headers=admin.auth)) == (404, "project_not_found")
    assert error(api.get(f"/v1/projects/{project.id}/members", headers=visitor(api, project.id).auth)) == (
        403,
        "forbidden",
    )
    assert error(api.get(f"/v1/projects/{project.id}/members")) == (401, "not_authenticated")


def test_a_removed_member_loses_the_project_at_once(api: httpx.Client, project: Project, db: Db) -> None:
    admin = add_member(api, project)
    assert api.get(f"/v1/projects/{project.id}", headers=admin.auth).status_code == 200

    r = remove(api, project.id, admin.id, project.owner)
    assert r.status_code == 204, r.text
    assert r.content == b""
    for method, path in [
        ("GET", f"/v1/projects/{project.id}"),
        ("GET", f"/v1/projects/{project.id}/members"),
        ("GET", f"/v1/projects/{project.id}/users"),
        ("GET", conversations_path(project.id)),
    ]:
        assert error(api.request(method, path, headers=admin.auth)) == (404, "project_not_found"), path
    assert [m["staff_id"] for m in members(api, project.id, project.owner)] == [project.owner.id]
    assert db.count("memberships", "project_id = :p AND staff_id = :s", p=project.id, s=admin.id) == 0
    # The account itself stays: it still signs in and may be added again.
    assert api.get("/v1/staff/me", headers=admin.auth).status_code == 200

    [event] = audit_actions(api, project, "project.member_removed")
    assert (event["actorId"], event["subjectId"], event["details"]) == (project.owner.id, admin.id, {"role": "admin"})

    assert error(remove(api, project.id, admin.id, project.owner)) == (404, "member_not_found")
    assert error(remove(api, project.id, "0" * 24, project.owner)) == (404, "member_not_found")
    assert error(remove(api, project.id, "not an id", project.owner)) == (404, "member_not_found")
    assert len(audit_actions(api, project, "project.member_removed")) == 1


def test_a_removed_members_open_sockets_close_on_every_process(
    server: Server, api: httpx.Client, project: Project
) -> None:
    one, two = worker_doors(server.url, server.process.pid)
    assert one.worker is not None and two.worker is not None
    leaving, staying = add_member(api, project), add_member(api, project)
    ann = customer(api, project)

    async def scenario() -> None:
        on_one = await open_live_on(server, one.worker, project.id, leaving.token, name="removed, worker 1")
        on_two = await open_live_on(server, two.worker, project.id, leaving.token, name="removed, worker 2")
        colleague = await open_live_on(server, one.worker, project.id, staying.token, name="colleague")
        r = two.delete(f"/v1/projects/{project.id}/members/{leaving.id}", headers=project.owner.auth)
        assert r.status == 204, r.text
        began = time.monotonic()
        for live in (on_one, on_two):
            code, frames = await live.closed(WITHIN)
            assert code == 4404, (live.name, code)
            assert frames == []  # nothing of the project after the removal
        assert time.monotonic() - began <= WITHIN
        # The colleague's socket stays and still hears the project.
        conversation = one.post(conversations_path(project.id), json_body={}, headers=ann.auth).json()
        assert (await colleague.expect("conversation.created"))["conversationId"] == conversation["id"]
        await colleague.close()

    run(scenario())


def test_admins_may_leave_but_not_remove_others(api: httpx.Client, project: Project, db: Db) -> None:
    first, second = add_member(api, project), add_member(api, project)
    assert error(remove(api, project.id, second.id, first)) == (403, "insufficient_role")
    assert error(remove(api, project.id, project.owner.id, first)) == (403, "insufficient_role")
    assert db.count("memberships", "project_id = :p", p=project.id) == 3

    assert remove(api, project.id, first.id, first).status_code == 204
    assert error(api.get(f"/v1/projects/{project.id}", headers=first.auth)) == (404, "project_not_found")
    assert [m["staff_id"] for m in members(api, project.id, second)] == [project.owner.id, second.id]

    # Outsiders and end users are refused, and nothing changes.
    stranger = sign_up_staff(api, "stranger")
    assert error(remove(api, project.id, second.id, stranger)) == (404, "project_not_found")
    r = api.delete(f"/v1/projects/{project.id}/members/{second.id}", headers=visitor(api, project.id).auth)
    assert error(r) == (403, "forbidden")
    assert db.count("memberships", "project_id = :p", p=project.id) == 2


def test_the_last_owner_can_neither_leave_nor_be_removed(api: httpx.Client, project: Project, db: Db) -> None:
    assert error(remove(api, project.id, project.owner.id, project.owner)) == (409, "last_owner")
    admin = add_member(api, project)
    assert error(remove(api, project.id, project.owner.id, admin)) == (403, "insufficient_role")
    second = add_member(api, project, "owner", "owner2")
    assert remove(api, project.id, project.owner.id, second).status_code == 204
    assert error(remove(api, project.id, second.id, second)) == (409, "last_owner")
    # Stepping down is the same rule: the only owner cannot make themself an admin.
    step_down = {"email": second.email, "role": "admin"}
    r = api.post(f"/v1/projects/{project.id}/members", json=step_down, headers=second.auth)
    assert error(r) == (409, "last_owner")
    assert sorted(db.rows("SELECT staff_id, role FROM memberships WHERE project_id = :p", p=project.id)) == sorted(
        [(second.id, "owner"), (admin.id, "admin")]
    )
    removals = audit_actions(api, Project(project.id, project.secret, second), "project.member_removed")
    assert [(e["actorId"], e["subjectId"]) for e in removals] == [(second.id, project.owner.id)]


def race(server: Server, requests: list[tuple[str, Staff]]) -> list[tuple[int, str | None]]:
    """DELETE each path as its staff member, all at the same moment (a barrier releases them)."""
    start = threading.Barrier(len(requests))
    with httpx.Client(base_url=server.url, timeout=60) as client:

        def send(request: tuple[str, Staff]) -> tuple[int, str | None]:
            start.wait()
            r = client.delete(request[0], headers=request[1].auth)
            return r.status_code, r.json()["error"]["code"] if r.content else None

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(send, requests))


def test_two_owners_removed_at_once_leave_exactly_one(server: Server, api: httpx.Client, db: Db) -> None:
    for round_ in range(8):
        owner = sign_up_staff(api, "owner")
        project = make_project(api, owner)
        other = add_member(api, project, "owner", "owner2")
        path = f"/v1/projects/{project.id}/members/"
        if round_ % 2:
            # Both leave: the second to go would be the last owner.
            answers = race(server, [(path + owner.id, owner), (path + other.id, other)])
            assert sorted(answers) == [(204, None), (409, "last_owner")], (round_, answers)
        else:
            # Each removes the other: the second finds itself removed already.
            answers = race(server, [(path + other.id, owner), (path + owner.id, other)])
            assert sorted(answers) == [(204, None), (404, "project_not_found")], (round_, answers)
        assert db.count("memberships", "project_id = :p AND role = 'owner'", p=project.id) == 1, round_


# -- a user's sessions, and signing them out everywhere ----------------------------------------


def test_sessions_lists_the_live_ones_newest_first(api: httpx.Client, project: Project, db: Db) -> None:
    ext = f"cust-{secrets.token_hex(4)}"
    logged_out, expired, older, newer = (customer(api, project, ext) for _ in range(4))
    other = customer(api, project)
    assert api.post("/v1/auth/logout", headers=logged_out.auth).status_code == 200
    db.execute("UPDATE sessions SET expires_at = created_at WHERE id = :id", id=session_id(expired))

    admin = add_member(api, project)
    for ref in (ext, newer.id):
        r = api.get(f"/v1/projects/{project.id}/users/{ref}/sessions", headers=admin.auth)
        assert r.status_code == 200, r.text
        sessions = r.json()["sessions"]
        assert [s["id"] for s in sessions] == [session_id(newer), session_id(older)]
        assert all(s["method"] == "customer_login" for s in sessions)  # the way in that opened each
        assert all(s["created_at"].endswith("Z") and s["expires_at"] > s["created_at"] for s in sessions)
        assert set(sessions[0]) == {"id", "method", "created_at", "expires_at"}
    r = api.get(f"/v1/projects/{project.id}/users/{other.id}/sessions", headers=admin.auth)
    assert [s["id"] for s in r.json()["sessions"]] == [session_id(other)]

    path = f"/v1/projects/{project.id}/users/{ext}/sessions"
    stranger = sign_up_staff(api, "stranger")
    assert error(api.get(path, headers=stranger.auth)) == (404, "project_not_found")
    assert error(api.get(path, headers=newer.auth)) == (403, "forbidden")
    assert error(api.get(path)) == (401, "not_authenticated")
    assert error(api.get(f"/v1/projects/{project.id}/users/nobody/sessions", headers=admin.auth)) == (
        404,
        "user_not_found",
    )
    # Another project's user is not this project's.
    elsewhere = make_project(api, project.owner)
    assert error(api.get(f"/v1/projects/{elsewhere.id}/users/{newer.id}/sessions", headers=project.owner.auth)) == (
        404,
        "user_not_found",
    )


def test_sign_out_everywhere_closes_every_socket_of_the_user_on_every_process(
    server: Server, api: httpx.Client, project: Project, db: Db
) -> None:
    one, two = worker_doors(server.url, server.process.pid)
    assert one.worker is not None and two.worker is not None
    ext = f"erin-{secrets.token_hex(4)}"
    phone, laptop = customer(api, project, ext), customer(api, project, ext)
    bystander = customer(api, project)
    admin = add_member(api, project)
    # Each process has read (and, on PostgreSQL, keeps a copy of) every session before they end.
    for door in (one, two):
        for user in (phone, laptop):
            assert door.get(conversations_path(project.id), headers=user.auth).status == 200

    async def scenario() -> None:
        on_one = await open_live_on(server, one.worker, project.id, phone.token, name="phone on worker 1")
        on_two = await open_live_on(server, two.worker, project.id, laptop.token, name="laptop on worker 2")
        also_one = await open_live_on(server, one.worker, project.id, laptop.token, name="laptop on worker 1")
        other = await open_live_on(server, one.worker, project.id, bystander.token, name="bystander")
        staff = await open_live_on(server, one.worker, project.id, admin.token, name="admin")

        r = two.post(f"/v1/projects/{project.id}/users/{ext}/logout", headers=admin.auth)
        assert r.status == 200, r.text
        began = time.monotonic()
        assert r.json() == {"revoked": 2}
        for live in (on_one, on_two, also_one):
            code, frames = await live.closed(WITHIN)
            assert code == 4001, (live.name, code)
            assert [(f["type"], f["reason"]) for f in frames] == [("session.revoked", "signed_out_everywhere")]
        assert time.monotonic() - began <= WITHIN
        await other.ping()
        await staff.ping()
        await other.close()
        await staff.close()

    run(scenario())

    for door in (one, two):
        for user in (phone, laptop):
            assert door.get(f"/v1/projects/{project.id}/auth/me", headers=user.auth).status == 401
            assert door.get(conversations_path(project.id), headers=user.auth).status == 401
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=bystander.auth).status_code == 200
    assert db.count("sessions", "subject_id = :u AND revoked_at IS NULL", u=phone.id) == 0

    assert api.get(f"/v1/projects/{project.id}/users/{ext}/sessions", headers=admin.auth).json() == {"sessions": []}
    [event] = audit_actions(api, project, "user.signed_out_everywhere")
    assert (event["actorId"], event["subjectId"], event["details"]) == (admin.id, phone.id, {"sessions": 2})
    # Again: nothing left to end. The user signs in again as before.
    r = api.post(f"/v1/projects/{project.id}/users/{phone.id}/logout", headers=project.owner.auth)
    assert r.json() == {"revoked": 0}
    again = customer(api, project, ext)
    assert again.id == phone.id
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=again.auth).status_code == 200


def test_sign_out_everywhere_refusals_change_nothing(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    path = f"/v1/projects/{project.id}/users/{user.id}/logout"
    stranger = sign_up_staff(api, "stranger")
    key = {"Authorization": f"Bearer {api_key(api, project, ['org.admin', 'org.user'])}"}
    assert error(api.post(path, headers=stranger.auth)) == (404, "project_not_found")
    assert error(api.post(path, headers=user.auth)) == (403, "forbidden")
    assert error(api.post(path, headers=key)) == (401, "not_authenticated")
    assert error(api.post(path)) == (401, "not_authenticated")
    r = api.post(f"/v1/projects/{project.id}/users/nobody-{secrets.token_hex(3)}/logout", headers=project.owner.auth)
    assert error(r) == (404, "user_not_found")
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=user.auth).status_code == 200
    assert audit_actions(api, project, "user.signed_out_everywhere") == []


# -- the token tester -----------------------------------------------------------------------


class Snapshot:
    """What a sign-in could create, change or consume in one project, counted."""

    def __init__(self, db: Db, project_id: str) -> None:
        self.db, self.project_id = db, project_id

    def take(self) -> dict[str, Any]:
        p = {"p": self.project_id}
        return {
            "users": self.db.rows(
                "SELECT id, email, firstname, disabled_at, last_seen_at FROM end_users"
                " WHERE project_id = :p ORDER BY id",
                **p,
            ),
            "seats": self.db.rows("SELECT SUM(used) FROM seat_counters WHERE project_id = :p", **p)[0][0],
            "sessions": self.db.count("sessions", "project_id = :p", **p),
            "live_sessions": self.db.count("sessions", "project_id = :p AND revoked_at IS NULL", **p),
            "jtis": self.db.count("used_token_ids", "project_id = :p", **p),
            "audit": self.db.count("audit_events", "project_id = :p", **p),
            "events": self.db.count("events", "project_id = :p", **p),
        }


@pytest.fixture
def snapshot(db: Db, project: Project) -> Snapshot:
    return Snapshot(db, project.id)


def check(api: httpx.Client, project: Project, token: str, method: str, by: Staff | None = None) -> dict[str, Any]:
    r = api.post(
        f"/v1/projects/{project.id}/token-check",
        json={"token": token, "method": method},
        headers=(by or project.owner).auth,
    )
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert set(body) == {"accepted", "method", "reason", "message", "claims", "identity", "user", "would"}, body
    assert body["method"] == method and body["message"], body
    return body


def test_a_good_token_would_create_and_nothing_is_created_or_consumed(
    api: httpx.Client, project: Project, snapshot: Snapshot
) -> None:
    customer(api, project)  # one user and one seat already
    claims = {"externalId": "new-person", "firstname": "Nia", "iat": now(), "exp": now() + 600, "jti": "once-1"}
    token = hs256(project.secret, claims)
    admin = add_member(api, project)
    before = snapshot.take()

    for _ in range(2):  # the second check finds the jti unused too
        body = check(api, project, token, "customer_login", by=admin)
        assert (body["accepted"], body["would"], body["reason"], body["user"]) == (True, "create", None, None)
        assert body["claims"] == claims
        assert body["identity"] == {"externalId": "new-person"}
    assert snapshot.take() == before

    # The real sign-in afterwards: the same jti is still unused.
    r = api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["externalId"] == "new-person"
    after = snapshot.take()
    assert (after["seats"], after["jtis"]) == (before["seats"] + 1, before["jtis"] + 1)
    # And now the tester sees the jti used.
    body = check(api, project, token, "customer_login")
    assert (body["accepted"], body["would"], body["reason"]) == (False, None, "replayed")
    assert body["identity"] == {"externalId": "new-person"}


def test_a_returning_user_would_sign_in_as_stored(
    server: Server, api: httpx.Client, project: Project, snapshot: Snapshot
) -> None:
    code = hs256(project.secret, {"user": {"id": "ret-1", "email": "ret@example.com", "firstname": "Ret"}})
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert r.status_code == 200, r.text
    stored = api.get(f"/v1/projects/{project.id}/users/ret-1", headers=project.owner.auth).json()
    before = snapshot.take()

    renamed = hs256(project.secret, {"user": {"id": "ret-1", "email": "ret@example.com", "firstname": "Renamed"}})
    body = check(api, project, renamed, "external_code")
    assert (body["accepted"], body["would"], body["reason"]) == (True, "sign_in", None)
    assert body["user"] == stored  # the name the token would change is not changed
    assert body["identity"] == {"externalId": "ret-1", "email": "ret@example.com"}
    by_email = check(api, project, hs256(project.secret, {"email": "ret@example.com"}), "external_code")
    assert (by_email["would"], by_email["user"]) == ("sign_in", stored)
    assert by_email["identity"] == {"email": "ret@example.com"}

    tiledesk = hs256(project.secret, {"_id": "ret-1", "sub": "userexternal", "aud": audience(server, project.id)})
    body = check(api, project, tiledesk, "custom_token")
    assert (body["accepted"], body["would"], body["user"]) == (True, "sign_in", stored)
    assert snapshot.take() == before


def audience(server: Server, project_id: str) -> str:
    return f"{server.url}/projects/{project_id}"


def real_sign_in(api: httpx.Client, project: Project, token: str, method: str) -> httpx.Response:
    if method == "customer_login":
        return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})
    if method == "external_code":
        return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": token})
    return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {token}"})


def test_each_rejection_reason_is_the_sign_ins_own(
    server: Server, api: httpx.Client, project: Project, snapshot: Snapshot
) -> None:
    other = make_project(api, project.owner)
    base = {"externalId": "rej-1", "iat": now()}
    tiledesk = {"_id": "rej-1", "sub": "userexternal", "aud": audience(server, project.id)}
    cases = [
        ("bad_signature", hs256("another secret, long enough to be a key", base), "customer_login"),
        ("expired", hs256(project.secret, {**base, "exp": now() - 120}), "customer_login"),
        ("alg_not_allowed", raw_token({"alg": "HS512", "typ": "JWT"}, base, project.secret), "customer_login"),
        ("alg_not_allowed", raw_token({"alg": "none"}, base, None), "customer_login"),
        ("iat_too_old", hs256(project.secret, {**base, "iat": now() - 7200}), "customer_login"),
        ("missing_claim", hs256(project.secret, {"iat": now()}), "customer_login"),
        ("bad_signature", hs256(other.secret, {"user": {"id": "rej-1"}}), "external_code"),
        ("wrong_subject", hs256(project.secret, {**tiledesk, "sub": "someone"}), "custom_token"),
        ("wrong_audience", hs256(project.secret, {**tiledesk, "aud": "https://elsewhere.example/p/1"}), "custom_token"),
    ]
    before = snapshot.take()
    for reason, token, method in cases:
        body = check(api, project, token, method)
        assert (body["accepted"], body["reason"], body["would"], body["user"]) == (False, reason, None, None), (
            reason,
            body,
        )
        # The real sign-in gives the same reason.
        r = real_sign_in(api, project, token, method)
        assert (r.status_code, r.json()["error"]["reason"]) == (401, reason), (reason, r.text)
    # A good token of another project is not this project's to test.
    foreign = hs256(other.secret, {**tiledesk, "aud": audience(server, other.id)})
    body = check(api, project, foreign, "custom_token")
    assert (body["accepted"], body["reason"], body["would"]) == (False, "wrong_audience", None)

    # The decoded payload comes back when it can be read, whatever the signature.
    body = check(api, project, cases[0][1], "customer_login")
    assert body["claims"] == base and body["identity"] is None
    malformed = check(api, project, "not.a-token", "customer_login")
    assert (malformed["reason"], malformed["claims"]) == ("malformed", None)
    assert check(api, project, "x" * 9000, "customer_login")["reason"] == "too_large"

    after = snapshot.take()
    # The real sign-ins recorded their refusals (all but the one whose aud names no project); the tester nothing.
    assert after["audit"] - before["audit"] == len(cases) - 1
    assert {**after, "audit": 0} == {**before, "audit": 0}


def test_a_full_project_would_refuse_a_new_user_but_not_a_returning_one(
    api: httpx.Client, project: Project, snapshot: Snapshot
) -> None:
    returning = customer(api, project, "full-1")
    r = api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 1}}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    before = snapshot.take()

    body = check(api, project, hs256(project.secret, {"externalId": "full-2", "iat": now()}), "customer_login")
    assert (body["accepted"], body["would"], body["reason"], body["user"]) == (False, "refuse", None, None)
    assert body["identity"] == {"externalId": "full-2"}
    assert "seat" in body["message"]
    body = check(api, project, hs256(project.secret, {"externalId": "full-1", "iat": now()}), "customer_login")
    assert (body["accepted"], body["would"], body["user"]["_id"]) == (True, "sign_in", returning.id)

    # Unknown users under the "id" and "email" rules: refused, as the exchange would.
    body = check(api, project, hs256(project.secret, {"id": "nobody"}), "external_code")
    assert (body["accepted"], body["would"], body["reason"]) == (False, "refuse", None)
    assert snapshot.take() == before


def test_a_turned_off_way_in_would_refuse(api: httpx.Client, project: Project, snapshot: Snapshot) -> None:
    r = api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"auth_methods": {"external_jwt": False}}},
        headers=project.owner.auth,
    )
    assert r.status_code == 200, r.text
    claims = {"externalId": "off-1", "iat": now()}
    before = snapshot.take()
    body = check(api, project, hs256(project.secret, claims), "customer_login")
    assert (body["accepted"], body["would"], body["reason"], body["identity"]) == (False, "refuse", None, None)
    assert body["claims"] == claims
    assert "turned off" in body["message"]
    assert snapshot.take() == before


def test_a_vouched_email_would_create_without_displacing_the_typed_account(
    api: httpx.Client, project: Project, snapshot: Snapshot
) -> None:
    email = unique_email("typed")
    r = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    typed = EndUser(r.json()["user"]["_id"], r.json()["token"])
    before = snapshot.take()

    body = check(api, project, hs256(project.secret, {"email": email, "iat": now()}), "customer_login")
    assert (body["accepted"], body["would"], body["user"]) == (True, "create", None)
    assert snapshot.take() == before
    # The typed account keeps its email, password and session: the displacement was rolled back.
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=typed.auth).status_code == 200
    r = api.post(f"/v1/projects/{project.id}/auth/email/signin", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_only_owners_and_admins_may_test_tokens(api: httpx.Client, project: Project) -> None:
    path = f"/v1/projects/{project.id}/token-check"
    body = {"token": hs256(project.secret, {"externalId": "who", "iat": now()}), "method": "customer_login"}
    user = customer(api, project)
    key = {"Authorization": f"Bearer {api_key(api, project, ['org.admin', 'org.user'])}"}
    stranger = sign_up_staff(api, "stranger")
    assert error(api.post(path, json=body, headers=user.auth)) == (403, "forbidden")
    assert error(api.post(path, json=body, headers=key)) == (401, "not_authenticated")
    assert error(api.post(path, json=body)) == (401, "not_authenticated")
    assert error(api.post(path, json=body, headers=stranger.auth)) == (404, "project_not_found")
    # As a sign-in token in the header, the customer token itself is no session either.
    assert error(api.post(path, json=body, headers={"Authorization": f"JWT {body['token']}"})) == (
        401,
        "not_authenticated",
    )

    owner = project.owner.auth
    for bad, field in [
        ({"token": body["token"]}, "method"),
        ({**body, "method": "email"}, "method"),
        ({**body, "method": None}, "method"),
        ({"method": "customer_login"}, "token"),
        ({**body, "token": 5}, "token"),
        ({**body, "token": ""}, "token"),
    ]:
        r = api.post(path, json=bad, headers=owner)
        assert error(r) == (422, "validation_failed"), (bad, r.text)
        assert field in r.json()["error"]["fields"], r.text
    r = api.post(path, content=b"{not json", headers={**owner, "Content-Type": "application/json"})
    assert error(r) == (400, "malformed_json")
    # The token may come as the sign-ins hand tokens out, "JWT <token>".
    r = api.post(path, json={**body, "token": f"JWT {body['token']}"}, headers=owner)
    assert (r.status_code, r.json()["would"]) == (200, "create")


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server allowing three sign-in attempts per address a minute (the signin_ip rule)."""
    srv = start_server(
        tmp_path_factory.mktemp("throttled"), None, workers=1, extra_env={"CHATGATE_RATE_LIMITS": "signin_ip=3/60"}
    )
    try:
        yield srv
    finally:
        srv.stop()


def test_token_checks_count_against_the_sign_in_throttle(throttled: Server) -> None:
    fit_in_one_window(60)
    with httpx.Client(base_url=throttled.url, timeout=30) as api:
        owner = sign_up_staff(api, "owner")  # sign_up_staff signs in once: one of the three
        project = make_project(api, owner)
        token = hs256(project.secret, {"externalId": "t-1", "iat": now()})
        answers = [
            api.post(
                f"/v1/projects/{project.id}/token-check",
                json={"token": token, "method": "customer_login"},
                headers=owner.auth,
            )
            for _ in range(3)
        ]
    assert [r.status_code for r in answers] == [200, 200, 429], [r.text for r in answers]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_the_new_routes_are_documented_in_openapi(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, method in [
        ("/v1/staff/me", "get"),
        ("/v1/projects/{pid}/members", "get"),
        ("/v1/projects/{pid}/members/{staff_id}", "delete"),
        ("/v1/projects/{pid}/users/{user_ref}/sessions", "get"),
        ("/v1/projects/{pid}/users/{user_ref}/logout", "post"),
        ("/v1/projects/{pid}/token-check", "post"),
    ]:
        assert method in paths.get(path, {}), (method, path)
