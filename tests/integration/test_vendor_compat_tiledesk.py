"""Tiledesk's clients against Chatgate, as they send their requests: staff sign-up and sign-in with empty,
partial and form bodies, HTTP Basic on staff routes, anonymous visitors who give an email, and
signinWithCustomToken with each header form, Tiledesk's own audience and custom claims."""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import (
    PASSWORD,
    POSTGRES_URL,
    Db,
    Project,
    Server,
    fit_in_one_window,
    make_project,
    sign_up_staff,
    start_server,
    unique_email,
)
from jwt_tools import hs256, now

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON_TYPE = {"Content-Type": "application/json"}
# The shipped sign-in limits (settings.py), so that Basic is seen limited exactly as sign-in is.
SHIPPED_SIGNIN_RULES = "signin_account=10/300,signin_ip=60/60,signup_ip=20/3600,anonymous_ip=60/60"
_addresses = itertools.count(1)


def tiledesk_aud(project_id: str) -> str:
    return f"https://tiledesk.com/projects/{project_id}"


def fields_of(r: httpx.Response) -> set[str]:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_failed"
    return set(r.json()["error"]["fields"])


# -- bodies: empty, partial, forms -------------------------------------------


def test_empty_and_partial_bodies_name_each_missing_field(api: httpx.Client, db: Db) -> None:
    before = db.count("staff_accounts")
    for headers in (JSON_TYPE, FORM, {}):
        # Tiledesk's clients post an empty body and expect to hear which fields are missing.
        assert fields_of(api.post("/v1/auth/signup", content=b"", headers=headers)) == {
            "email",
            "password",
            "firstname",
            "lastname",
        }
        assert fields_of(api.post("/v1/auth/signin", content=b"", headers=headers)) == {"email", "password"}
        assert fields_of(api.post("/v1/auth/signinAnonymously", content=b"  \n", headers=headers)) == {"id_project"}
    assert fields_of(api.post("/v1/auth/signup", json={"email": unique_email(), "password": PASSWORD})) == {
        "firstname",
        "lastname",
    }
    assert fields_of(api.post("/v1/auth/signin", json={"email": unique_email()})) == {"password"}
    # A body that is there but is not JSON is still a malformed request.
    for body in (b"email", b"{", b"[]"):
        r = api.post("/v1/auth/signin", content=body, headers=JSON_TYPE)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), body
    assert db.count("staff_accounts") == before


def test_form_bodies_sign_up_and_in_as_tiledesk_clients_post_them(api: httpx.Client, db: Db, project: Project) -> None:
    email = unique_email("form")
    r = api.post(
        "/v1/auth/signup",
        data={"email": email.upper(), "password": PASSWORD, "firstname": "Andrea", "lastname": "Leo"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["msg"] == "Successfully created new user."
    assert r.json()["user"]["email"] == email and r.json()["user"]["emailverified"] is False
    signed_in = api.post("/v1/auth/signin", data={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["token"]
    assert token.startswith("JWT ")
    assert api.get("/v1/staff/me", headers={"Authorization": token}).json()["email"] == email
    wrong = api.post("/v1/auth/signin", data={"email": email, "password": "not the password"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_credentials")
    # curl -d '{…}' sends JSON under the form type: still read as JSON.
    curl = api.post("/v1/auth/signin", content=json.dumps({"email": email, "password": PASSWORD}), headers=FORM)
    assert curl.status_code == 200, curl.text

    accounts = db.count("staff_accounts")
    twice = f"email={unique_email()}&email={unique_email()}&password=x&firstname=a&lastname=b"
    assert "email" in fields_of(api.post("/v1/auth/signup", content=twice, headers=FORM))
    for not_a_form in (b"no equals sign", b"email=%ff%fe&password=x", b"\xff\xfe=1"):
        r = api.post("/v1/auth/signup", content=not_a_form, headers=FORM)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), not_a_form
    assert "email" in fields_of(
        api.post("/v1/auth/signup", content="email=a%00b@example.com&password=x&firstname=a&lastname=b", headers=FORM)
    )
    assert db.count("staff_accounts") == accounts

    visitor = api.post("/v1/auth/signinAnonymously", data={"id_project": project.id, "firstname": "Guest"})
    assert visitor.status_code == 200, visitor.text
    assert visitor.json()["user"]["anonymous"] is True and visitor.json()["user"]["firstname"] == "Guest"


# -- anonymous visitors with an email ---------------------------------------


def customer_login(api: httpx.Client, project: Project, claims: dict[str, Any]) -> httpx.Response:
    token = hs256(project.secret, {"iat": now(), **claims})
    return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})


def test_an_anonymous_visitor_keeps_a_typed_email_that_identifies_nobody(
    api: httpx.Client, project: Project, db: Db
) -> None:
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 2}}, headers=project.owner.auth)
    users = f"/v1/projects/{project.id}/users"
    email = unique_email("guest")
    body = {"id_project": project.id, "email": email.upper(), "firstname": "Guest", "lastname": "One"}
    first = api.post("/v1/auth/signinAnonymously", json=body)
    assert first.status_code == 200, first.text
    visitor = first.json()["user"]
    assert (visitor["email"], visitor["emailverified"], visitor["anonymous"]) == (email, False, True)
    assert (visitor["fullName"], visitor["createdVia"], visitor["externalId"]) == ("Guest One", "anonymous", None)
    # Visitors take no seat, and another may give the same email.
    second = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id, "email": email})
    assert second.status_code == 200 and second.json()["user"]["_id"] != visitor["_id"]
    assert api.get(users, headers=project.owner.auth).json()["seats"]["used"] == 0
    visitor_auth = {"Authorization": first.json()["token"]}
    me = f"/v1/projects/{project.id}/auth/me"
    # The typed email names nobody: not for isLoggedIn, not for a code that finds users by email.
    assert api.get(me, params={"email": email}, headers=visitor_auth).json() == {"loggedIn": False, "user": None}
    code = hs256(project.secret, {"email": email})
    by_email = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert (by_email.status_code, by_email.json()["error"]["code"]) == (404, "user_not_found")

    # The person who owns the email arrives with a vouched login: a user of their own, never a visitor.
    vouched = customer_login(api, project, {"email": email})
    assert vouched.status_code == 200, vouched.text
    owner_user = vouched.json()["user"]
    assert owner_user["_id"] not in (visitor["_id"], second.json()["user"]["_id"])
    assert (owner_user["anonymous"], owner_user["emailverified"]) == (False, True)
    assert api.get(users, headers=project.owner.auth).json()["seats"]["used"] == 1
    # The visitors are untouched: still signed in, still holding what they typed.
    assert api.get(me, headers=visitor_auth).json()["user"]["email"] == email
    found = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert found.status_code == 200 and found.json()["user"]["_id"] == owner_user["_id"]
    assert db.count("end_users", "project_id = :p AND email = :e", p=project.id, e=email) == 3
    assert db.count("end_users", "project_id = :p AND email = :e AND NOT anonymous", p=project.id, e=email) == 1

    # Nor does a visitor's email stand in the way of someone signing up with it.
    other = unique_email("typed")
    api.post("/v1/auth/signinAnonymously", json={"id_project": project.id, "email": other})
    signed_up = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": other, "password": PASSWORD})
    assert signed_up.status_code == 200, signed_up.text
    assert signed_up.json()["user"]["anonymous"] is False

    before = db.count("end_users", "project_id = :p", p=project.id)
    bad = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id, "email": "not an email"})
    assert fields_of(bad) == {"email"}
    assert db.count("end_users", "project_id = :p", p=project.id) == before


# -- signinWithCustomToken ----------------------------------------------------


def custom_sign_in(api: httpx.Client, authorization: str, **kwargs: Any) -> httpx.Response:
    return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": authorization}, **kwargs)


def test_the_custom_token_comes_in_each_header_form(
    api: httpx.Client, server: Server, project: Project, node_mint: Any
) -> None:
    claims = {"_id": "td-forms", "sub": "userexternal", "aud": f"{server.url}/projects/{project.id}"}
    token = node_mint("tiledesk", project.secret, claims)
    ids = set()
    for authorization in (f"JWT {token}", f"jwt {token}", f"Bearer {token}", token):
        r = custom_sign_in(api, authorization)
        assert r.status_code == 200, (authorization[:8], r.text)
        ids.add(r.json()["user"]["_id"])
    # Tiledesk's widget posts without a body; a form body may carry the visitor to merge.
    visitor = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()["token"]
    merged = custom_sign_in(api, token, data={"anonymous_token": visitor})
    assert merged.status_code == 200, merged.text
    ids.add(merged.json()["user"]["_id"])
    assert len(ids) == 1
    for refused in ("Basic " + token, "JWT", ""):
        r = custom_sign_in(api, refused)
        assert (r.status_code, r.json()["error"]["reason"]) == (401, "malformed"), refused


def test_tiledesk_s_own_audience_names_the_project(
    api: httpx.Client, server: Server, project: Project, db: Db, node_mint: Any
) -> None:
    claims = {"_id": "td-aud", "sub": "userexternal", "aud": tiledesk_aud(project.id), "firstname": "andrea"}
    r = custom_sign_in(api, "JWT " + node_mint("tiledesk", project.secret, claims))
    assert r.status_code == 200, r.text
    assert r.json()["user"]["externalId"] == "td-aud"

    before = db.count("end_users")
    other = make_project(api, project.owner)
    cases = [
        # Another project's id: that project's secret decides, and this token was not signed with it.
        (hs256(project.secret, {**claims, "aud": tiledesk_aud(other.id)}), "bad_signature"),
        # An id no project has (nor lists in its accepted audiences).
        (hs256(project.secret, {**claims, "aud": tiledesk_aud(secrets.token_hex(12))}), "wrong_audience"),
        (hs256(project.secret, {**claims, "aud": f"http://tiledesk.com/projects/{project.id}"}), "wrong_audience"),
        (hs256(project.secret, {**claims, "aud": f"https://tiledesk.com/projects/{project.id}/"}), "wrong_audience"),
        (hs256(project.secret, {**claims, "aud": f"https://evil.example/projects/{project.id}"}), "wrong_audience"),
    ]
    for token, reason in cases:
        r = custom_sign_in(api, f"JWT {token}")
        assert (r.status_code, r.json()["error"]["reason"]) == (401, reason), r.text
    assert db.count("end_users") == before
    # The same audience signed with that other project's secret is that project's.
    theirs = custom_sign_in(api, "JWT " + hs256(other.secret, {**claims, "aud": tiledesk_aud(other.id)}))
    assert theirs.status_code == 200
    assert db.count("end_users", "project_id = :p", p=other.id) == 1


def test_custom_claims_sit_on_the_user_where_tiledesk_puts_them(
    api: httpx.Client, server: Server, project: Project, node_mint: Any
) -> None:
    custom = {"customAttr": "c1", "plan": {"tier": 2}}
    # Claims named like Chatgate's own fields stay custom claims: they never replace the real ones.
    lookalikes = {
        "fullName": "Mallory",
        "anonymous": True,
        "createdVia": "admin",
        "emailverified": False,
        "externalId": "spoofed",
        "createdAt": "1970-01-01T00:00:00.000Z",
        "metadata": "m",
    }
    claims = {
        "_id": "123",
        "firstname": "andrea",
        "lastname": "leo",
        "email": "email2@email.com",
        "sub": "userexternal",
        "aud": tiledesk_aud(project.id),
        **custom,
        **lookalikes,
    }
    r = custom_sign_in(api, "JWT " + node_mint("tiledesk", project.secret, claims))
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["customAttr"] == "c1" and user["plan"] == {"tier": 2}
    assert user["metadata"] == {**custom, **lookalikes}
    assert (user["externalId"], user["fullName"], user["email"]) == ("123", "andrea leo", "email2@email.com")
    assert (user["anonymous"], user["createdVia"], user["emailverified"]) == (False, "custom_token", True)
    assert user["createdAt"] != lookalikes["createdAt"]
    # Elsewhere the user object is the contract's: the claims are in metadata only.
    listed = api.get(f"/v1/projects/{project.id}/users/123", headers=project.owner.auth).json()
    assert "customAttr" not in listed and listed["metadata"] == user["metadata"]


# -- HTTP Basic on staff routes ---------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def basic_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that takes staff HTTP Basic, with the shipped sign-in limits; requests come from the
    addresses the tests name in X-Forwarded-For."""
    database_url, admin, name = None, None, ""
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("needs CHATGATE_TEST_POSTGRES_URL")
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        name = f"chatgate_basic_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = admin.url.set(database=name).render_as_string(hide_password=False)
    srv = start_server(
        tmp_path_factory.mktemp(f"basic-{request.param}"),
        database_url,
        workers=1,
        extra_env={
            "CHATGATE_STAFF_BASIC_AUTH": "true",
            "CHATGATE_RATE_LIMITS": SHIPPED_SIGNIN_RULES,
            "CHATGATE_TRUSTED_PROXIES": "127.0.0.1",
        },
    )
    try:
        yield srv
    finally:
        srv.stop()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture
def basic_api(basic_server: Server) -> Iterator[httpx.Client]:
    """A client of its own address: the per-address sign-in limit counts this test's requests only."""
    address = f"198.51.100.{next(_addresses) % 250 + 1}"
    with httpx.Client(base_url=basic_server.url, timeout=30, headers={"X-Forwarded-For": address}) as client:
        yield client


@pytest.fixture
def basic_db(basic_server: Server) -> Db:
    return Db(basic_server.engine)


def new_staff(api: httpx.Client) -> tuple[str, str]:
    """A staff account made by sign-up alone (which no sign-in limit counts): its email and _id."""
    email = unique_email("basic")
    r = api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "firstname": "Ada", "lastname": "L"})
    assert r.status_code == 200, r.text
    return email, r.json()["user"]["_id"]


def basic(email: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def failed_signins(db: Db, staff_id: str) -> list[Any]:
    rows = db.rows(
        "SELECT details, project_id FROM audit_events WHERE action = 'staff:signin:failed' AND subject_id = :s",
        s=staff_id,
    )
    return [(json.loads(details) if isinstance(details, str) else details, pid) for details, pid in rows]


def test_the_api_description_offers_basic_on_staff_routes(basic_api: httpx.Client) -> None:
    spec = basic_api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["staffBasic"]["scheme"] == "basic"
    assert {"staffBasic": []} in spec["paths"]["/v1/staff/me"]["get"]["security"]
    # Never for end users.
    assert {"staffBasic": []} not in spec["paths"]["/v1/projects/{pid}/auth/me"]["get"]["security"]


def test_a_deployment_can_turn_basic_off(tmp_path: Path) -> None:
    server = start_server(tmp_path, None, workers=1, extra_env={"CHATGATE_STAFF_BASIC_AUTH": "false"})
    try:
        with httpx.Client(base_url=server.url) as api:
            staff = sign_up_staff(api, "basic-off")
            db = Db(server.engine)
            projects = db.count("projects")
            r = api.get("/v1/staff/me", auth=(staff.email, PASSWORD))
            assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated")
            assert "CHATGATE_STAFF_BASIC_AUTH" in r.json()["msg"]
            r = api.post("/v1/projects", json={"name": "Nope"}, auth=(staff.email, PASSWORD))
            assert r.status_code == 401
            assert db.count("projects") == projects
            assert failed_signins(db, staff.id) == []
            # Nor does the API description offer it.
            spec = api.get("/openapi.json").json()
            assert "staffBasic" not in spec["components"]["securitySchemes"]
            offered = {
                name
                for ops in spec["paths"].values()
                for op in ops.values()
                for s in op.get("security", [])
                for name in s
            }
            assert "session" in offered and "staffBasic" not in offered
    finally:
        server.stop()


def test_a_client_sending_basic_with_every_request_is_not_throttled_by_its_successes(
    basic_api: httpx.Client, basic_db: Db
) -> None:
    email, staff_id = new_staff(basic_api)
    fit_in_one_window(300)
    # Thirty requests, three times the sign-in limit for one account and address (10 per 5 minutes).
    statuses = [basic_api.get("/v1/staff/me", auth=(email, PASSWORD)).status_code for _ in range(30)]
    assert statuses == [200] * 30
    # A wrong password is checked and counted every time: with the one checked success, ten attempts
    # use up the account's budget, as on the sign-in route.
    wrong = [basic_api.get("/v1/staff/me", auth=(email, f"wrong {i}")).status_code for i in range(10)]
    assert wrong == [401] * 9 + [429]
    assert len(failed_signins(basic_db, staff_id)) == 9


def test_staff_routes_take_basic_as_tiledesk_clients_send_it(basic_api: httpx.Client, basic_db: Db) -> None:
    email, staff_id = new_staff(basic_api)
    # httpx's auth=(user, password) is curl -u: Authorization: Basic base64(email:password).
    me = basic_api.get("/v1/staff/me", auth=(email.upper(), PASSWORD))
    assert me.status_code == 200, me.text
    assert me.json()["_id"] == staff_id
    created = basic_api.post("/v1/projects", json={"name": "Over Basic"}, auth=(email, PASSWORD))
    assert created.status_code == 200, created.text
    pid = created.json()["_id"]
    settings = {"settings": {"seat_limit": 5}}
    changed = basic_api.patch(f"/v1/projects/{pid}", json=settings, headers=basic(email, PASSWORD))
    assert changed.json()["settings"]["seat_limit"] == 5
    seats = basic_api.get(f"/v1/projects/{pid}/users", auth=(email, PASSWORD)).json()["seats"]
    assert seats == {"used": 0, "limit": 5}
    assert basic_api.get(f"/v1/projects/{pid}/conversations", auth=(email, PASSWORD)).status_code == 200
    # No session is stored for it, and a success is not one audit row per request.
    assert basic_db.count("sessions", "subject_id = :s", s=staff_id) == 0
    assert basic_db.count("audit_events", "action = 'staff:signin:succeeded' AND subject_id = :s", s=staff_id) == 0

    wrong = basic_api.get("/v1/staff/me", auth=(email, "not the password"))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_credentials")
    assert failed_signins(basic_db, staff_id) == [({"method": "basic"}, None)]
    unknown = basic_api.get("/v1/staff/me", auth=(unique_email(), PASSWORD))
    assert unknown.json()["error"] == wrong.json()["error"]


def test_basic_never_stands_for_a_session_or_an_end_user(basic_api: httpx.Client, basic_db: Db) -> None:
    email, staff_id = new_staff(basic_api)
    token = basic_api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
    pid = basic_api.post("/v1/projects", json={"name": "P"}, headers={"Authorization": token}).json()["_id"]
    creds = basic(email, PASSWORD)
    # Logout ends a session; Basic has none to end (and the stored session is left alone).
    r = basic_api.post("/v1/auth/logout", headers=creds)
    assert r.status_code == 401 and "session token" in r.json()["msg"]
    assert basic_api.get("/v1/staff/me", headers={"Authorization": token}).status_code == 200
    assert basic_api.get(f"/v1/projects/{pid}/auth/me", headers=creds).status_code == 401
    # The signing secret's API-key route takes API keys only.
    assert basic_api.get("/v1/auth/customer/settings", headers=creds).json()["error"]["code"] == "invalid_api_key"
    # An end user's email and password are no staff credentials.
    user_email = unique_email("enduser")
    signed_up = basic_api.post(
        f"/v1/projects/{pid}/auth/email/signup", json={"email": user_email, "password": PASSWORD}
    )
    assert signed_up.status_code == 200, signed_up.text
    for path in ("/v1/staff/me", f"/v1/projects/{pid}/conversations"):
        r = basic_api.get(path, auth=(user_email, PASSWORD))
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_credentials"), path
    # A browser's request (it carries Origin) is refused before any check: its kept credentials may be forged.
    projects = basic_db.count("projects")
    r = basic_api.post("/v1/projects", json={"name": "CSRF"}, headers={**creds, "Origin": "https://evil.example"})
    assert r.status_code == 401 and "browser" in r.json()["msg"]
    assert basic_db.count("projects") == projects
    for garbage in ("Basic !!!", "Basic " + base64.b64encode(b"no colon here").decode(), "Basic"):
        r = basic_api.get("/v1/staff/me", headers={"Authorization": garbage})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated"), garbage
    assert failed_signins(basic_db, staff_id) == []


def test_wrong_passwords_over_basic_are_limited_as_over_signin(basic_api: httpx.Client, basic_db: Db) -> None:
    email, staff_id = new_staff(basic_api)
    fit_in_one_window(300)
    statuses = [basic_api.get("/v1/staff/me", auth=(email, f"wrong {i}")).status_code for i in range(10)]
    assert statuses == [401] * 10
    # The eleventh attempt is refused whatever the password, over Basic and over sign-in alike.
    limited = basic_api.get("/v1/staff/me", auth=(email, PASSWORD))
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 301
    signin = basic_api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert signin.status_code == 429
    assert len(failed_signins(basic_db, staff_id)) == 10

    # One budget for both ways in: five wrong passwords each way use it up.
    other, other_id = new_staff(basic_api)
    for i in range(5):
        assert basic_api.get("/v1/staff/me", auth=(other, f"wrong {i}")).status_code == 401
        assert basic_api.post("/v1/auth/signin", json={"email": other, "password": f"wrong {i}"}).status_code == 401
    assert basic_api.get("/v1/staff/me", auth=(other, PASSWORD)).status_code == 429
    methods = sorted(details["method"] for details, _ in failed_signins(basic_db, other_id))
    assert methods == ["basic"] * 5 + ["password"] * 5
