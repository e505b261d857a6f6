"""Staff routes tell the truth: member roles as stored, and audiences that projects may share
without learning anything about each other."""

from __future__ import annotations

import httpx

from conftest import Db, Project, Server, make_project, sign_up_staff
from jwt_tools import hs256


def members(api: httpx.Client, project: Project, email: str, role: str) -> httpx.Response:
    return api.post(
        f"/v1/projects/{project.id}/members", json={"email": email, "role": role}, headers=project.owner.auth
    )


def test_changing_a_role_answers_the_role_that_is_stored(api: httpx.Client, project: Project, db: Db) -> None:
    colleague = sign_up_staff(api, "colleague")
    stored = "SELECT role FROM memberships WHERE project_id = :p AND staff_id = :s"
    for role in ("admin", "owner", "admin"):
        r = members(api, project, colleague.email, role)
        assert r.status_code == 201, r.text
        assert r.json()["role"] == role
        assert db.rows(stored, p=project.id, s=colleague.id) == [(role,)]
    # An admin may not read the audit log; an owner may.
    assert api.get(f"/v1/projects/{project.id}/audit", headers=colleague.auth).status_code == 403


def test_the_last_owner_cannot_step_down(api: httpx.Client, project: Project, db: Db) -> None:
    r = members(api, project, project.owner.email, "admin")
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    assert db.rows("SELECT role FROM memberships WHERE staff_id = :s", s=project.owner.id) == [("owner",)]
    second = sign_up_staff(api, "second-owner")
    assert members(api, project, second.email, "owner").status_code == 201
    r = members(api, project, project.owner.email, "admin")
    assert r.status_code == 201 and r.json()["role"] == "admin"


def test_two_projects_may_accept_the_same_audience(api: httpx.Client, server: Server, project: Project) -> None:
    shared = "https://tiledesk.com/projects/legacy"
    other_owner = sign_up_staff(api, "other-owner")
    other = make_project(api, other_owner)
    for p in (project, other):
        r = api.patch(f"/v1/projects/{p.id}", json={"settings": {"accepted_audiences": [shared]}}, headers=p.owner.auth)
        assert r.status_code == 200, r.text
        assert r.json()["settings"]["accepted_audiences"] == [shared]

    def sign_in(secret: str, user_id: str) -> httpx.Response:
        token = hs256(secret, {"_id": user_id, "sub": "userexternal", "aud": shared})
        return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {token}"})

    # The token goes to the project whose key verifies it.
    mine = sign_in(project.secret, "u-mine")
    theirs = sign_in(other.secret, "u-theirs")
    assert mine.status_code == theirs.status_code == 200
    assert api.get(f"/v1/projects/{project.id}/users/u-mine", headers=project.owner.auth).status_code == 200
    assert api.get(f"/v1/projects/{other.id}/users/u-theirs", headers=other_owner.auth).status_code == 200
    assert api.get(f"/v1/projects/{project.id}/users/u-theirs", headers=project.owner.auth).status_code == 404
    # Signed by neither project: refused, naming no project.
    forged = sign_in("x" * 64, "u-forged")
    assert forged.status_code == 401 and forged.json()["error"]["reason"] == "bad_signature"
    assert other.id not in forged.text and project.id not in forged.text
