"""Identifiers mean one thing: emails in one normal form, no look-alikes or hidden characters,
bounded externalIds that never shadow a Chatgate ``_id``, and an exact ``isLoggedIn``."""

from __future__ import annotations

import unicodedata
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, Db, Project
from jwt_tools import hs256, now

KELVIN = "\u212a"  # folds to ASCII "k"


def sign_up(api: httpx.Client, project: Project, email: str) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})


def customer_login(api: httpx.Client, project: Project, claims: dict[str, Any]) -> httpx.Response:
    token = hs256(project.secret, {"iat": now(), **claims})
    return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})


def exchange(api: httpx.Client, project: Project, claims: dict[str, Any]) -> httpx.Response:
    code = hs256(project.secret, claims)
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})


BAD_EMAILS = [
    f"{KELVIN}im@example.com",  # KELVIN SIGN would reach kim@
    "\u017fam@example.com",  # LONG S folds to s
    "\uff4bim@example.com",  # fullwidth k
    "ki\u202em@example.com",  # right-to-left override
    "ki\u200bm@example.com",  # zero-width space
    "ki\x07m@example.com",  # a control character
    "kim@example.com.",  # a domain ending in a dot
    "kim@example..com",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_look_alike_and_hidden_characters_are_refused_in_emails(
    api: httpx.Client, project: Project, db: Db, email: str
) -> None:
    before = db.count("end_users")
    r = sign_up(api, project, email)
    assert r.status_code == 422, r.text
    assert "email" in r.json()["error"]["fields"]
    vouched = customer_login(api, project, {"email": email})
    assert vouched.status_code == 401
    assert vouched.json()["error"]["reason"] == "invalid_claim"
    assert db.count("end_users") == before


def test_the_kelvin_sign_cannot_reach_an_ascii_account(api: httpx.Client, project: Project, db: Db) -> None:
    kim = customer_login(api, project, {"email": "kim@example.com"}).json()["user"]
    for claims in ({"email": f"{KELVIN}im@example.com"}, {"email": f"{KELVIN}IM@EXAMPLE.COM"}):
        r = customer_login(api, project, claims)
        assert r.status_code == 401 and r.json()["error"]["reason"] == "invalid_claim"
    assert exchange(api, project, {"email": f"{KELVIN}im@example.com"}).status_code == 401
    assert db.count("end_users", "project_id = :p", p=project.id) == 1
    assert customer_login(api, project, {"email": "KIM@example.com"}).json()["user"]["_id"] == kim["_id"]


def test_internationalised_emails_work_in_one_normal_form(api: httpx.Client, project: Project) -> None:
    composed = "jos\u00e9@b\u00fccher.example"
    decomposed = unicodedata.normalize("NFD", composed).upper()
    r = sign_up(api, project, decomposed)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == composed  # trimmed, NFC, lowercased
    signin = api.post(f"/v1/projects/{project.id}/auth/email/signin", json={"email": composed, "password": PASSWORD})
    assert signin.status_code == 200 and signin.json()["user"]["_id"] == r.json()["user"]["_id"]
    assert sign_up(api, project, composed).status_code == 409


@pytest.mark.parametrize(
    "external_id",
    ["x" * 256, "a\u202eb", "a\u2066b", "a\x07b", "\u200b", " ", ""],
)
def test_bad_external_ids_are_refused_as_invalid_claims(
    api: httpx.Client, project: Project, db: Db, external_id: str
) -> None:
    before = db.count("end_users")
    for r in (
        customer_login(api, project, {"externalId": external_id}),
        exchange(api, project, {"user": {"id": external_id}}),
        exchange(api, project, {"id": external_id}),
    ):
        assert r.status_code == 401, r.text
        assert r.json()["error"] == {**r.json()["error"], "code": "invalid_token", "reason": "invalid_claim"}
    assert db.count("end_users") == before


def test_external_ids_up_to_255_characters_work(api: httpx.Client, project: Project) -> None:
    longest = "\u00e9" + "x" * 254
    r = customer_login(api, project, {"externalId": longest})
    assert r.status_code == 200 and r.json()["user"]["externalId"] == longest


def test_an_external_id_can_never_shadow_another_users_id(api: httpx.Client, project: Project, db: Db) -> None:
    bob = exchange(api, project, {"user": {"id": "bob"}}).json()["user"]
    before = db.count("end_users")
    # A new user whose externalId is Bob's _id would hide Bob from TypingMind's {id} lookup.
    r = exchange(api, project, {"user": {"id": bob["_id"]}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "identity_conflict"
    r = customer_login(api, project, {"externalId": bob["_id"]})
    assert r.status_code == 409
    assert db.count("end_users") == before
    # So {id} names exactly one user: by externalId first, else by _id.
    assert exchange(api, project, {"id": bob["_id"]}).json()["user"]["_id"] == bob["_id"]
    assert exchange(api, project, {"id": "bob"}).json()["user"]["_id"] == bob["_id"]
    users = f"/v1/projects/{project.id}/users"
    assert api.get(f"{users}/{bob['_id']}", headers=project.owner.auth).json()["_id"] == bob["_id"]
    assert api.get(f"{users}/bob", headers=project.owner.auth).json()["_id"] == bob["_id"]


def test_is_logged_in_matches_exactly_and_refuses_malformed_identifiers(api: httpx.Client, project: Project) -> None:
    login = customer_login(api, project, {"externalId": "k-7", "firstname": "Kim"}).json()
    by_email = customer_login(api, project, {"email": "kim7@example.com"}).json()
    me = f"/v1/projects/{project.id}/auth/me"

    def logged_in(token: str, **params: str) -> Any:
        r = api.get(me, params=params, headers={"Authorization": token})
        assert r.status_code == 200, r.text
        return r.json()["loggedIn"]

    assert logged_in(login["token"], externalId="k-7") is True
    assert logged_in(login["token"], externalId="K-7") is False  # externalIds are exact
    assert logged_in(login["token"], externalId="k-7 ") is False
    assert logged_in(login["token"], email="kim7@example.com") is False  # another user's email
    assert logged_in(by_email["token"], email=" KIM7@example.com") is True  # emails in their normal form
    assert logged_in(by_email["token"], externalId="k-7") is False
    for params in (
        {"email": "not-an-email"},
        {"email": f"{KELVIN}im7@example.com"},
        {"externalId": ""},
        {"externalId": "x" * 256},
        {"externalId": "a\u202eb"},
    ):
        r = api.get(me, params=params, headers={"Authorization": login["token"]})
        assert r.status_code == 422, (params, r.text)
        assert set(r.json()["error"]["fields"]) == set(params)
