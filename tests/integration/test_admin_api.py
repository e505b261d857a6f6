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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from conftest import Db, Project, Server, Staff, make_project, sign_up_staff
from doors import worker_doors
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
        assert all(s["method"] == "end_user" for s in sessions)
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


def test_the_new_routes_are_documented_in_openapi(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, method in [
        ("/v1/staff/me", "get"),
        ("/v1/projects/{pid}/members", "get"),
        ("/v1/projects/{pid}/members/{staff_id}", "delete"),
        ("/v1/projects/{pid}/users/{user_ref}/sessions", "get"),
        ("/v1/projects/{pid}/users/{user_ref}/logout", "post"),
    ]:
        assert method in paths.get(path, {}), (method, path)
