"""Contract §4.1 anonymous visitors, §4.5 end-user email accounts, and visitor merging."""

from __future__ import annotations

import unicodedata

import httpx

from conftest import PASSWORD, Db, Project, unique_email
from jwt_tools import hs256, now


def test_anonymous_sign_in(api: httpx.Client, project: Project, db: Db) -> None:
    r = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id, "firstname": "Guest"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["token"].startswith("JWT ")
    assert body["user"]["anonymous"] is True
    assert body["user"]["createdVia"] == "anonymous"
    assert body["user"]["firstname"] == "Guest"
    me = api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": body["token"]}).json()
    assert me["user"]["_id"] == body["user"]["_id"]


def test_anonymous_errors(api: httpx.Client, project: Project, db: Db) -> None:
    before = db.count("end_users")
    r = api.post("/v1/auth/signinAnonymously", json={"id_project": "000000000000000000000000"})
    assert r.status_code == 404
    assert api.post("/v1/auth/signinAnonymously", json={}).status_code == 422
    api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"auth_methods": {"anonymous": False}}},
        headers=project.owner.auth,
    )
    r = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth_method_disabled"
    assert db.count("end_users") == before


def test_anonymous_visitors_never_take_seats(api: httpx.Client, project: Project) -> None:
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 0}}, headers=project.owner.auth)
    for _ in range(3):
        assert api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).status_code == 200
    seats = api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth).json()["seats"]
    assert seats == {"used": 0, "limit": 0}


def test_email_signup_and_signin(api: httpx.Client, project: Project, db: Db) -> None:
    email = unique_email("enduser")
    base = f"/v1/projects/{project.id}/auth/email"
    r = api.post(f"{base}/signup", json={"email": email.upper(), "password": PASSWORD, "firstname": "Eve"})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["email"] == email and user["createdVia"] == "email"
    assert api.post(f"{base}/signup", json={"email": email, "password": PASSWORD}).status_code == 409
    assert api.post(f"{base}/signup", json={"email": unique_email(), "password": "123456789"}).status_code == 422
    r = api.post(f"{base}/signin", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["_id"] == user["_id"]
    wrong = api.post(f"{base}/signin", json={"email": email, "password": "definitely wrong pw"})
    unknown = api.post(f"{base}/signin", json={"email": unique_email(), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    # A user made by a token has no password: the same 401.
    api.post(
        f"/v1/projects/{project.id}/auth/external-code",
        json={"externalAuthCode": hs256(project.secret, {"user": {"id": "t", "email": "tok@example.com"}})},
    )
    assert api.post(f"{base}/signin", json={"email": "tok@example.com", "password": PASSWORD}).json() == wrong.json()
    assert db.count("end_users", "email = :e", e=email) == 1


def test_email_methods_can_be_turned_off(api: httpx.Client, project: Project) -> None:
    api.patch(
        f"/v1/projects/{project.id}", json={"settings": {"auth_methods": {"email": False}}}, headers=project.owner.auth
    )
    r = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": unique_email(), "password": PASSWORD})
    assert r.status_code == 403


def test_login_with_anonymous_token_ends_the_visitor_sessions(api: httpx.Client, project: Project, db: Db) -> None:
    visitor = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()
    raw = visitor["token"].split(" ", 1)[1]
    r = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(project.secret, {"externalId": "merge-1", "iat": now()}), "anonymous_token": raw},
    )
    assert r.status_code == 200
    assert r.json()["merged_conversations"] == 0
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": visitor["token"]}).status_code == 401
    assert (
        db.count("end_users", "id = :v AND merged_into = :u", v=visitor["user"]["_id"], u=r.json()["user"]["_id"]) == 1
    )


def test_anonymous_token_of_another_project_or_identified_user_is_not_merged(
    api: httpx.Client, project: Project
) -> None:
    other = api.post("/v1/projects", json={"name": "Other"}, headers=project.owner.auth).json()["_id"]
    foreign = api.post("/v1/auth/signinAnonymously", json={"id_project": other}).json()["token"]
    identified = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(project.secret, {"externalId": "idf", "iat": now()})},
    ).json()["token"]
    for token in (foreign, identified):
        r = api.post(
            f"/v1/projects/{project.id}/auth/customer/login",
            json={
                "jwtToken": hs256(project.secret, {"externalId": "target", "iat": now()}),
                "anonymous_token": token.split(" ", 1)[1],
            },
        )
        assert r.status_code == 200
        assert r.json()["merged_conversations"] == 0
        # The other session still works: nothing was ended.
        owner_pid = other if token == foreign else project.id
        assert api.get(f"/v1/projects/{owner_pid}/auth/me", headers={"Authorization": token}).status_code == 200


def test_anonymous_token_is_accepted_as_the_login_answer_gave_it(api: httpx.Client, project: Project, db: Db) -> None:
    visitor = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()
    r = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={
            "jwtToken": hs256(project.secret, {"externalId": "merge-prefixed", "iat": now()}),
            "anonymous_token": visitor["token"],  # "JWT <token>", as signinAnonymously answered it
        },
    )
    assert r.status_code == 200
    assert (
        db.count("end_users", "id = :v AND merged_into = :u", v=visitor["user"]["_id"], u=r.json()["user"]["_id"]) == 1
    )


def test_sign_in_reads_the_email_in_the_sign_up_normal_form(api: httpx.Client, project: Project) -> None:
    composed = "ren\u00e9e-" + unique_email("nfc")
    base = f"/v1/projects/{project.id}/auth/email"
    assert api.post(f"{base}/signup", json={"email": composed, "password": PASSWORD}).status_code == 200
    decomposed = unicodedata.normalize("NFD", composed).upper()
    assert api.post(f"{base}/signin", json={"email": decomposed, "password": PASSWORD}).status_code == 200
