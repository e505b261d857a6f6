"""Contract §2: staff sign-up and sign-in."""

from __future__ import annotations

import httpx

from conftest import PASSWORD, Db, unique_email


def signup(api: httpx.Client, **overrides: object) -> httpx.Response:
    body = {"email": unique_email("staff"), "password": PASSWORD, "firstname": "Grace", "lastname": "Hopper"}
    body.update(overrides)
    return api.post("/v1/auth/signup", json=body)


def test_signup_returns_the_tiledesk_shape_and_normalises_the_email(api: httpx.Client, db: Db) -> None:
    email = unique_email("Mixed.Case")
    r = signup(api, email=f"  {email.upper()}  ")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert body["msg"] == "Successfully created new user."
    user = body["user"]
    assert set(user) == {"_id", "email", "firstname", "lastname", "emailverified", "createdAt", "updatedAt"}
    assert user["email"] == email.lower()
    assert user["emailverified"] is False
    assert user["createdAt"].endswith("Z")
    assert "password" not in r.text and "argon2" not in r.text
    assert db.count("staff_accounts", "email = :e", e=email.lower()) == 1


def test_duplicate_email_is_409_and_creates_nothing(api: httpx.Client, db: Db) -> None:
    email = unique_email("dup")
    assert signup(api, email=email).status_code == 200
    r = signup(api, email=email.upper())
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"
    assert db.count("staff_accounts", "email = :e", e=email) == 1


def test_field_problems_are_422_with_each_field_named(api: httpx.Client, db: Db) -> None:
    before = db.count("staff_accounts")
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "password123"}, "password"),  # on the common-password list
        ({"password": "x" * 257}, "password"),
        ({"firstname": ""}, "firstname"),
        ({"lastname": 42}, "lastname"),
    ]
    for override, field in cases:
        r = signup(api, **override)
        assert r.status_code == 422, (override, r.text)
        body = r.json()
        assert body["success"] is False
        assert body["error"]["code"] == "validation_failed"
        assert field in body["error"]["fields"], body
        assert body["msg"] == body["error"]["message"]
    r = api.post("/v1/auth/signup", json={"email": unique_email()})
    assert r.status_code == 422
    assert {"password", "firstname", "lastname"} <= set(r.json()["error"]["fields"])
    assert db.count("staff_accounts") == before


def test_malformed_json_is_400(api: httpx.Client) -> None:
    r = api.post("/v1/auth/signup", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"
    r = api.post("/v1/auth/signup", json=["a", "list"])
    assert r.status_code == 400


def test_signin_gives_a_jwt_prefixed_token(api: httpx.Client) -> None:
    email = unique_email("signin")
    signup(api, email=email)
    r = api.post("/v1/auth/signin", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert body["token"].startswith("JWT ")
    assert body["user"]["email"] == email
    assert set(body["user"]) == {"_id", "email", "firstname", "lastname", "emailverified"}


def test_unknown_email_and_wrong_password_get_the_same_answer(api: httpx.Client) -> None:
    email = unique_email("same")
    signup(api, email=email)
    wrong = api.post("/v1/auth/signin", json={"email": email, "password": "not the password at all"})
    unknown = api.post("/v1/auth/signin", json={"email": unique_email("nobody"), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_session_schemes_are_case_insensitive(api: httpx.Client) -> None:
    email = unique_email("scheme")
    signup(api, email=email)
    token = api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
    raw = token.split(" ", 1)[1]
    for header in (f"JWT {raw}", f"jwt {raw}", f"Bearer {raw}", f"BEARER {raw}"):
        assert api.get("/v1/projects", headers={"Authorization": header}).status_code == 200, header
    assert api.get("/v1/projects", headers={"Authorization": f"Basic {raw}"}).status_code == 401
    assert api.get("/v1/projects").status_code == 401


def test_staff_logout_revokes_at_once(api: httpx.Client) -> None:
    email = unique_email("logout")
    signup(api, email=email)
    token = api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
    assert api.get("/v1/projects", headers={"Authorization": token}).status_code == 200
    assert api.post("/v1/auth/logout", headers={"Authorization": token}).status_code == 200
    r = api.get("/v1/projects", headers={"Authorization": token})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
