"""A vouched identity always wins: an email someone only typed never captures a signed login.

Mallory signs up with the victim's email before the victim ever arrives. When
the project's backend later vouches for that email, the login must reach a
new identity, one Mallory holds no password or session for, and Mallory's
account must lose the email.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, Db, Project, Server, make_project, sign_up_staff, unique_email
from jwt_tools import hs256, now


@dataclass
class Squatter:
    email: str
    user_id: str
    token: str


def squat(api: httpx.Client, project: Project, email: str) -> Squatter:
    r = api.post(
        f"/v1/projects/{project.id}/auth/email/signup",
        json={"email": email, "password": PASSWORD, "firstname": "Mallory"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["emailverified"] is False  # typed, not vouched
    return Squatter(email, body["user"]["_id"], body["token"])


def seats(api: httpx.Client, project: Project) -> int:
    r = api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth)
    assert r.status_code == 200, r.text
    return int(r.json()["seats"]["used"])


def customer_login(api: httpx.Client, project: Project, claims: dict[str, Any]) -> httpx.Response:
    token = hs256(project.secret, {"iat": now(), **claims})
    return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})


def external_code(api: httpx.Client, project: Project, claims: dict[str, Any]) -> httpx.Response:
    code = hs256(project.secret, claims)
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})


def custom_token(api: httpx.Client, server: Server, project: Project, claims: dict[str, Any]) -> httpx.Response:
    token = hs256(project.secret, {"sub": "userexternal", "aud": f"{server.url}/projects/{project.id}", **claims})
    return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {token}"})


VOUCHED_LOGINS = {
    "customer_login": lambda api, server, project, email: customer_login(api, project, {"email": email}),
    "external_code_user": lambda api, server, project, email: external_code(
        api, project, {"user": {"id": "victim-1", "email": email}}
    ),
    "custom_token": lambda api, server, project, email: custom_token(
        api, server, project, {"_id": "victim-1", "email": email}
    ),
}


def me(api: httpx.Client, project: Project, token: str) -> httpx.Response:
    return api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": token})


@pytest.mark.parametrize("way_in", sorted(VOUCHED_LOGINS))
def test_a_vouched_login_never_lands_in_the_squatters_account(
    api: httpx.Client, server: Server, project: Project, db: Db, way_in: str
) -> None:
    email = unique_email("victim")
    mallory = squat(api, project, email)

    r = VOUCHED_LOGINS[way_in](api, server, project, email.upper())
    assert r.status_code == 200, r.text
    victim = r.json()["user"]
    assert victim["_id"] != mallory.user_id
    assert victim["email"] == email and victim["emailverified"] is True
    assert victim["firstname"] != "Mallory"  # nothing of the squatter's account passes over
    assert victim["metadata"] == {}

    # Mallory's password no longer opens anything, and her session is over.
    signin = api.post(f"/v1/projects/{project.id}/auth/email/signin", json={"email": email, "password": PASSWORD})
    assert signin.status_code == 401
    assert me(api, project, mallory.token).status_code == 401
    # The victim's session is the vouched identity.
    assert me(api, project, r.json()["token"]).json()["user"]["_id"] == victim["_id"]

    # The squatter's row lost the email and is disabled; one identified user holds it, verified.
    rows = db.rows("SELECT email, password_hash, disabled_at FROM end_users WHERE id = :id", id=mallory.user_id)
    assert rows[0][0] is None and rows[0][1] is None and rows[0][2] is not None
    assert db.count("end_users", "project_id = :p AND email = :e", p=project.id, e=email) == 1

    # The audit log says what happened, without a password or token.
    events = api.get(
        f"/v1/projects/{project.id}/audit", params={"action": "identity.claimed"}, headers=project.owner.auth
    ).json()["events"]
    assert [e["subjectId"] for e in events] == [mallory.user_id]
    assert PASSWORD not in str(events) and mallory.token not in str(events)

    # Seats: Mallory's seat was freed, the victim holds one.
    seats = api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth).json()
    assert seats["seats"]["used"] == 1
    assert [u["_id"] for u in seats["users"]] == [victim["_id"]]

    # The next vouched login finds the same identity; nothing is created again.
    again = VOUCHED_LOGINS[way_in](api, server, project, email)
    assert again.status_code == 200 and again.json()["user"]["_id"] == victim["_id"]


def test_the_vouched_login_succeeds_even_at_the_seat_limit(api: httpx.Client, project: Project) -> None:
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 1}}, headers=project.owner.auth)
    email = unique_email("victim")
    squat(api, project, email)
    r = customer_login(api, project, {"email": email})
    assert r.status_code == 200, r.text
    seats = api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth).json()["seats"]
    assert seats == {"used": 1, "limit": 1}


def test_a_code_that_only_finds_by_email_does_not_reach_the_squatter(
    api: httpx.Client, project: Project, db: Db
) -> None:
    """TypingMind rule 3 ({email}) signs in existing users only: a typed email is not one of them."""
    email = unique_email("victim")
    mallory = squat(api, project, email)
    r = external_code(api, project, {"email": email})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "user_not_found"
    # A refusal changes nothing: Mallory's account is as it was.
    assert me(api, project, mallory.token).status_code == 200
    assert db.count("end_users", "id = :id AND email = :e AND disabled_at IS NULL", id=mallory.user_id, e=email) == 1


def test_sign_up_for_a_verified_email_is_refused_like_any_taken_email(api: httpx.Client, project: Project) -> None:
    verified = unique_email("verified")
    assert customer_login(api, project, {"email": verified}).status_code == 200
    typed = unique_email("typed")
    squat(api, project, typed)

    def sign_up(email: str) -> httpx.Response:
        return api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})

    taken_verified, taken_typed = sign_up(verified), sign_up(typed)
    assert taken_verified.status_code == taken_typed.status_code == 409
    assert taken_verified.json() == taken_typed.json()  # reveals nothing about which kind of account holds it
    signin = api.post(f"/v1/projects/{project.id}/auth/email/signin", json={"email": verified, "password": PASSWORD})
    assert signin.status_code == 401


def test_a_vouched_identity_is_never_moved_by_a_later_sign_up(api: httpx.Client, project: Project, db: Db) -> None:
    email = unique_email("victim")
    first = customer_login(api, project, {"email": email}).json()["user"]
    r = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 409
    rows = db.rows("SELECT id, email_verified, password_hash FROM end_users WHERE email = :e", e=email)
    assert len(rows) == 1 and rows[0][0] == first["_id"] and rows[0][1] and rows[0][2] is None


def test_a_password_checked_while_a_vouched_login_claims_the_email_opens_nothing(
    server: Server, project: Project, db: Db
) -> None:
    """The password is checked (argon2id, tens of milliseconds) against the account that typed the email;
    a vouched login displacing that account meanwhile must not turn the check into a session for the new,
    vouched identity that now holds the email."""
    email = unique_email("ann")
    with httpx.Client(base_url=server.url, timeout=60) as api:
        mallory = squat(api, project, email)

    def sign_in(delay: float) -> httpx.Response:
        time.sleep(delay)
        with httpx.Client(base_url=server.url, timeout=60) as api:
            return api.post(f"/v1/projects/{project.id}/auth/email/signin", json={"email": email, "password": PASSWORD})

    def vouch() -> httpx.Response:
        time.sleep(0.15)  # while the sign-ins queue for their password checks
        with httpx.Client(base_url=server.url, timeout=60) as api:
            return customer_login(api, project, {"email": email, "externalId": f"crm-{mallory.user_id}"})

    with ThreadPoolExecutor(max_workers=41) as pool:
        sign_ins = [pool.submit(sign_in, i * 0.01) for i in range(40)]
        vouched = pool.submit(vouch).result()
        answers = [f.result() for f in sign_ins]
    assert vouched.status_code == 200, vouched.text
    ann = vouched.json()["user"]["_id"]
    assert ann != mallory.user_id
    for answer in answers:
        assert answer.status_code in (200, 401), answer.text
        if answer.status_code == 200:
            assert answer.json()["user"]["_id"] == mallory.user_id  # opened before the claim, if at all
        else:
            assert answer.json()["error"]["code"] == "invalid_credentials"
    assert db.count("sessions", "subject_id = :u AND method = 'email'", u=ann) == 0
    # Mallory's sessions, from before the claim or not, all ended with it.
    assert db.count("sessions", "subject_id = :u AND revoked_at IS NULL", u=mallory.user_id) == 0


def test_logins_racing_to_claim_one_typed_email_free_its_seat_once(server: Server, api: httpx.Client, db: Db) -> None:
    owner = sign_up_staff(api, "racing")
    project = make_project(api, owner)
    email = unique_email("seat")
    squat(api, project, email)
    assert seats(api, project) == 1

    code = hs256(project.secret, {"user": {"id": "ann-crm", "email": email}})
    kustomer = hs256(project.secret, {"iat": now(), "email": email, "externalId": "ann-crm"})
    claims = [
        (f"/v1/projects/{project.id}/auth/external-code", {"externalAuthCode": code}),
        (f"/v1/projects/{project.id}/auth/customer/login", {"jwtToken": kustomer}),
    ] * 4
    clients = [httpx.Client(base_url=server.url, timeout=60) for _ in claims]
    for client in clients:  # connected before the race starts
        assert client.get("/healthz").status_code == 200
    start = threading.Barrier(len(claims))

    def claim(i: int) -> httpx.Response:
        path, body = claims[i]
        start.wait()
        return clients[i].post(path, json=body)

    try:
        with ThreadPoolExecutor(max_workers=len(claims)) as pool:
            answers = list(pool.map(claim, range(len(claims))))
    finally:
        for client in clients:
            client.close()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    identified = db.count("end_users", "project_id = :p AND disabled_at IS NULL AND NOT anonymous", p=project.id)
    assert identified == 1
    assert seats(api, project) == 1  # the squatter's seat freed once, the vouched user's taken once
    assert db.count("audit_events", "project_id = :p AND action = :a", p=project.id, a="identity.claimed") == 1
