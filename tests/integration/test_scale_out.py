"""Several processes behave as one service: what one changes, every other honours at once.

Each test runs against three real set-ups, with requests sent to two different
processes (A and B):

* ``postgresql``: two ``chatgate serve`` instances (separate ports and data
  directories, one CHATGATE_SERVER_KEY) on one PostgreSQL database, rate
  counts in the database;
* ``postgresql+redis``: the same, rate counts in Redis;
* ``sqlite-2-workers``: one instance with ``--workers 2`` on SQLite, A and B
  being connections held by each of its two worker processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from chatgate.crypto.secrets import ServerKeys
from conftest import PASSWORD, Db, Server, fit_in_one_window, start_server, unique_email
from doors import Door, Reply, worker_doors
from jwt_tools import hs256

RATES = "signin_account=5/300,signin_ip=1000/60,signup_ip=1000/3600,anonymous_ip=1000/60"
# What "at once" must mean across processes.
WITHIN_SECONDS = 1.0


@dataclass
class Service:
    setup: str
    a: Door
    b: Door
    db: Db
    server_key: str
    redis_url: str | None


@pytest.fixture(scope="module", params=["postgresql", "postgresql+redis", "sqlite-2-workers"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server_key = secrets.token_hex(32)
    env = {
        "CHATGATE_SERVER_KEY": server_key,
        "CHATGATE_RATE_LIMITS": RATES,
        # Pinned connections stay with their worker between a test's steps.
        "CHATGATE_KEEPALIVE_TIMEOUT_SECONDS": "120",
        # Few connections: the PostgreSQL server is shared with the rest of the suite.
        "CHATGATE_DB_POOL_SIZE": "4",
    }
    redis_url = request.getfixturevalue("redis_url") if request.param.endswith("+redis") else None
    if redis_url:
        env["CHATGATE_REDIS_URL"] = redis_url
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    servers: list[Server] = []
    try:
        if request.param.startswith("postgresql"):
            database_url = request.getfixturevalue("postgres_database")
            env["CHATGATE_PUBLIC_URL"] = "https://chat.example.test"  # one service, one address
            for _ in range(2):
                servers.append(start_server(tmp, database_url, workers=1, extra_env=env))
            a, b = Door(servers[0].url, name="instance A"), Door(servers[1].url, name="instance B")
        else:
            servers.append(start_server(tmp, None, workers=2, extra_env=env))
            a, b = worker_doors(servers[0].url, servers[0].process.pid)
        yield Service(request.param, a, b, Db(servers[0].engine), server_key, redis_url)
        a.close()
        b.close()
    finally:
        for server in servers:
            server.stop()


def eventually(attempt: Callable[[], Reply], done: Callable[[Reply], bool]) -> Reply:
    """Repeat ``attempt`` until ``done`` holds or WITHIN_SECONDS pass; the last reply."""
    deadline = time.monotonic() + WITHIN_SECONDS
    while True:
        reply = attempt()
        if done(reply) or time.monotonic() >= deadline:
            return reply
        time.sleep(0.05)


def staff_token(door: Door) -> dict[str, str]:
    email = unique_email("staff")
    r = door.post(
        "/v1/auth/signup", json_body={"email": email, "password": PASSWORD, "firstname": "A", "lastname": "B"}
    )
    assert r.status == 200, r.text
    r = door.post("/v1/auth/signin", json_body={"email": email, "password": PASSWORD})
    assert r.status == 200, r.text
    return {"Authorization": r.json()["token"]}


def new_project(door: Door, auth: dict[str, str]) -> tuple[str, str]:
    r = door.post("/v1/projects", json_body={"name": "Support"}, headers=auth)
    assert r.status == 200, r.text
    pid = r.json()["_id"]
    r = door.post(f"/v1/{pid}/keys/generate", headers=auth)
    assert r.status == 200, r.text
    return pid, r.json()["jwtSecret"]


def test_a_session_works_everywhere_and_logout_ends_it_everywhere(service: Service) -> None:
    a, b = service.a, service.b
    staff = staff_token(a)
    assert b.get("/v1/projects", headers=staff).status == 200
    pid, _ = new_project(b, staff)

    visitor = a.post("/v1/auth/signinAnonymously", json_body={"id_project": pid})
    assert visitor.status == 200, visitor.text
    session = {"Authorization": visitor.json()["token"]}
    me = f"/v1/projects/{pid}/auth/me"
    assert b.get(me, headers=session).status == 200
    assert a.post("/v1/auth/logout", headers=session).status == 200
    r = eventually(lambda: b.get(me, headers=session), lambda r: r.status == 401)
    assert r.status == 401, r.text

    # And the other way round, for a staff session that A has just served.
    assert a.get("/v1/projects", headers=staff).status == 200
    assert b.post("/v1/auth/logout", headers=staff).status == 200
    r = eventually(lambda: a.get("/v1/projects", headers=staff), lambda r: r.status == 401)
    assert r.status == 401, r.text


def test_sessions_revoked_by_a_login_on_one_end_on_the_other(service: Service) -> None:
    a, b = service.a, service.b
    pid, secret = new_project(a, staff_token(a))
    me = f"/v1/projects/{pid}/auth/me"
    exchange = f"/v1/projects/{pid}/auth/external-code"

    # A visitor's session on B ends when A folds the visitor into a signed-in user.
    visitor = b.post("/v1/auth/signinAnonymously", json_body={"id_project": pid}).json()["token"]
    assert b.get(me, headers={"Authorization": visitor}).status == 200
    code = hs256(secret, {"user": {"id": "merged-into"}})
    r = a.post(exchange, json_body={"externalAuthCode": code, "anonymous_token": visitor.removeprefix("JWT ")})
    assert r.status == 200, r.text
    r = eventually(lambda: b.get(me, headers={"Authorization": visitor}), lambda r: r.status == 401)
    assert r.status == 401, r.text

    # An account that only typed its email loses its sessions on B when A signs in the vouched owner.
    email = unique_email("claimed")
    typed = b.post(f"/v1/projects/{pid}/auth/email/signup", json_body={"email": email, "password": PASSWORD})
    assert typed.status == 200, typed.text
    squatter = {"Authorization": typed.json()["token"]}
    assert b.get(me, headers=squatter).status == 200
    r = a.post(exchange, json_body={"externalAuthCode": hs256(secret, {"user": {"id": "owner", "email": email}})})
    assert r.status == 200, r.text
    r = eventually(lambda: b.get(me, headers=squatter), lambda r: r.status == 401)
    assert r.status == 401, r.text


def test_a_rotated_signing_secret_is_refused_everywhere(service: Service) -> None:
    a, b = service.a, service.b
    staff = staff_token(a)
    pid, old = new_project(a, staff)
    path = f"/v1/projects/{pid}/auth/external-code"
    old_code = hs256(old, {"user": {"id": "rotating"}})
    # B verifies with the old secret first, so whatever B keeps of it is put to the test.
    assert b.post(path, json_body={"externalAuthCode": old_code}).status == 200

    r = a.post(f"/v1/{pid}/keys/generate", headers=staff)
    assert r.status == 200
    new_code = hs256(r.json()["jwtSecret"], {"user": {"id": "rotating"}})
    refused = eventually(lambda: b.post(path, json_body={"externalAuthCode": old_code}), lambda r: r.status == 401)
    assert refused.status == 401 and refused.json()["error"]["reason"] == "bad_signature", refused.text
    assert b.post(path, json_body={"externalAuthCode": new_code}).status == 200


def test_a_revoked_api_key_is_refused_everywhere(service: Service) -> None:
    a, b = service.a, service.b
    staff = staff_token(a)
    pid, secret = new_project(a, staff)
    r = a.post(
        f"/v1/projects/{pid}/apikeys",
        json_body={"name": "Chat Settings", "roles": ["org.admin", "org.user"], "expires_in_days": None},
        headers=staff,
    )
    assert r.status == 201, r.text
    key_id, bearer = r.json()["id"], {"Authorization": f"Bearer {r.json()['key']}"}
    r = b.get("/v1/auth/customer/settings", headers=bearer)
    assert r.status == 200 and r.json()["data"]["attributes"]["secret"] == secret

    assert a.delete(f"/v1/projects/{pid}/apikeys/{key_id}", headers=staff).status == 200
    r = eventually(lambda: b.get("/v1/auth/customer/settings", headers=bearer), lambda r: r.status == 401)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text


def test_a_changed_setting_applies_everywhere(service: Service) -> None:
    a, b = service.a, service.b
    staff = staff_token(a)
    pid, _ = new_project(a, staff)

    def anonymous(door: Door) -> Reply:
        return door.post("/v1/auth/signinAnonymously", json_body={"id_project": pid})

    assert anonymous(b).status == 200
    off = {"settings": {"auth_methods": {"anonymous": False}}}
    assert a.patch(f"/v1/projects/{pid}", json_body=off, headers=staff).status == 200
    r = eventually(lambda: anonymous(b), lambda r: r.status == 403)
    assert r.status == 403 and r.json()["error"]["code"] == "auth_method_disabled", r.text

    on = {"settings": {"auth_methods": {"anonymous": True}}}
    assert b.patch(f"/v1/projects/{pid}", json_body=on, headers=staff).status == 200
    assert eventually(lambda: anonymous(a), lambda r: r.status == 200).status == 200


def test_a_setting_changed_while_the_listeners_are_cut_off_still_applies_everywhere(service: Service) -> None:
    """PostgreSQL processes keep the projects they read until a NOTIFY says otherwise; with their
    listening connections killed, that NOTIFY is lost, and B must not keep serving its copy."""
    if not service.setup.startswith("postgresql"):
        pytest.skip("SQLite processes read projects from the database every time")
    a, b = service.a, service.b
    staff = staff_token(a)
    pid, _ = new_project(a, staff)

    def anonymous(door: Door) -> Reply:
        return door.post("/v1/auth/signinAnonymously", json_body={"id_project": pid})

    assert anonymous(b).status == 200  # B has read (and may keep) the project
    service.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    off = {"settings": {"auth_methods": {"anonymous": False}}}
    assert a.patch(f"/v1/projects/{pid}", json_body=off, headers=staff).status == 200
    r = eventually(lambda: anonymous(b), lambda r: r.status == 403)
    assert r.status == 403 and r.json()["error"]["code"] == "auth_method_disabled", r.text


def test_a_user_who_signs_in_again_looks_the_same_everywhere(service: Service) -> None:
    """auth/me on B answers from B's copy of the session's user (PostgreSQL): new names from a later
    login on A, and an externalId A attached, show on B at once."""
    a, b = service.a, service.b
    pid, secret = new_project(a, staff_token(a))
    me = f"/v1/projects/{pid}/auth/me"

    def exchange(door: Door, user: dict[str, str]) -> Reply:
        r = door.post(
            f"/v1/projects/{pid}/auth/external-code", json_body={"externalAuthCode": hs256(secret, {"user": user})}
        )
        assert r.status == 200, r.text
        return r

    first = {"Authorization": exchange(a, {"id": "ada", "firstname": "Ada"}).json()["token"]}
    assert b.get(me, headers=first).json()["user"]["firstname"] == "Ada"  # B keeps it now
    renamed = exchange(a, {"id": "ada", "firstname": "Grace"}).json()["user"]
    r = eventually(lambda: b.get(me, headers=first), lambda r: r.json()["user"]["firstname"] == "Grace")
    assert r.json()["user"]["firstname"] == "Grace", r.text
    assert r.json()["user"]["lastSeenAt"] == renamed["lastSeenAt"]

    email = unique_email("kustomer")
    login = f"/v1/projects/{pid}/auth/customer/login"
    now = int(time.time())
    r = a.post(login, json_body={"jwtToken": hs256(secret, {"email": email, "iat": now})})
    assert r.status == 200, r.text
    customer = {"Authorization": r.json()["token"]}
    assert b.get(me, headers=customer).json()["user"]["externalId"] is None
    r = a.post(login, json_body={"jwtToken": hs256(secret, {"email": email, "externalId": "crm-7", "iat": now})})
    assert r.status == 200 and r.json()["externalId"] == "crm-7", r.text
    r = eventually(lambda: b.get(me, headers=customer), lambda r: r.json()["user"]["externalId"] == "crm-7")
    assert r.json()["user"]["externalId"] == "crm-7", r.text


def test_a_user_renamed_while_the_listeners_are_cut_off_is_renamed_everywhere(service: Service) -> None:
    """A user's change is announced, never stored: B must drop what it kept from before its listening
    connection was cut, rather than wait for a notice that was lost."""
    if not service.setup.startswith("postgresql"):
        pytest.skip("SQLite processes read users from the database every time")
    a, b = service.a, service.b
    pid, secret = new_project(a, staff_token(a))
    me = f"/v1/projects/{pid}/auth/me"
    exchange = f"/v1/projects/{pid}/auth/external-code"
    r = a.post(exchange, json_body={"externalAuthCode": hs256(secret, {"user": {"id": "lin", "firstname": "Lin"}})})
    session = {"Authorization": r.json()["token"]}
    assert b.get(me, headers=session).json()["user"]["firstname"] == "Lin"
    service.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    r = a.post(exchange, json_body={"externalAuthCode": hs256(secret, {"user": {"id": "lin", "firstname": "Mei"}})})
    assert r.status == 200, r.text  # its notice reaches nobody
    listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    deadline = time.monotonic() + 10
    while service.db.rows(listening)[0][0] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Listening again (a second or so later), B has dropped its old copy...
    assert b.get(me, headers=session).json()["user"]["firstname"] == "Mei"
    # ... keeps the new one, and forgets it when told.
    r = a.post(exchange, json_body={"externalAuthCode": hs256(secret, {"user": {"id": "lin", "firstname": "Zoe"}})})
    assert r.status == 200, r.text
    r = eventually(lambda: b.get(me, headers=session), lambda r: r.json()["user"]["firstname"] == "Zoe")
    assert r.json()["user"]["firstname"] == "Zoe", r.text


@pytest.mark.slow
def test_the_seat_limit_is_exact_across_processes(service: Service) -> None:
    limit, attempts = 5, 20
    staff = staff_token(service.a)
    pid, secret = new_project(service.a, staff)
    r = service.a.patch(f"/v1/projects/{pid}", json_body={"settings": {"seat_limit": limit}}, headers=staff)
    assert r.status == 200
    # Half the first logins through A, half through B, each on a connection of its own, all at once.
    doors = [(service.a if i % 2 == 0 else service.b).another() for i in range(attempts)]
    for door in doors:
        assert door.get("/healthz").status == 200  # connected (and, on SQLite, held by its worker)
    start = threading.Barrier(attempts)
    path = f"/v1/projects/{pid}/auth/external-code"

    def first_login(i: int) -> Reply:
        code = hs256(secret, {"user": {"id": f"seat-racer-{i}"}})
        start.wait()
        return doors[i].post(path, json_body={"externalAuthCode": code})

    try:
        with ThreadPoolExecutor(max_workers=attempts) as pool:
            replies = list(pool.map(first_login, range(attempts)))
    finally:
        for door in doors:
            door.close()
    assert Counter(r.status for r in replies) == {200: limit, 403: attempts - limit}, [r.text for r in replies]
    assert {r.json()["error"]["code"] for r in replies if r.status == 403} == {"seat_limit_reached"}
    assert service.db.count("end_users", "project_id = :p", p=pid) == limit


def test_wrong_passwords_spread_over_processes_are_limited_as_on_one(service: Service) -> None:
    a, b = service.a, service.b
    staff = staff_token(a)
    pid, _ = new_project(a, staff)
    email = unique_email("guessed")
    r = a.post(f"/v1/projects/{pid}/auth/email/signup", json_body={"email": email, "password": PASSWORD})
    assert r.status == 200, r.text
    signin = f"/v1/projects/{pid}/auth/email/signin"

    fit_in_one_window(300)
    wrong = [
        (a if i % 2 == 0 else b).post(signin, json_body={"email": email, "password": f"wrong guess {i}!"})
        for i in range(10)
    ]
    assert [r.status for r in wrong] == [401] * 5 + [429] * 5, [r.text for r in wrong]
    for r in wrong[5:]:
        assert r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 301
    # The right password waits for the window too, on every process.
    for door in (a, b):
        assert door.post(signin, json_body={"email": email, "password": PASSWORD}).status == 429

    # Every attempt was counted, refused ones included, under a key that does not hold the email.
    keys = ServerKeys.from_master(bytes.fromhex(service.server_key))
    pseudonym = hmac.new(keys.rate_limit_pseudonyms, email.encode(), hashlib.sha256).hexdigest()[:32]
    key = f"{pid}:{pseudonym}:127.0.0.1"
    stored = service.db.rows("SELECT hits FROM rate_counters WHERE rule = 'signin_account' AND key = :k", k=key)
    stored_keys = [row[0] for row in service.db.rows("SELECT key FROM rate_counters")]
    if service.redis_url is None:
        assert stored == [(12,)]
    else:
        from redis import Redis

        assert stored == []  # the counts live in Redis
        with Redis.from_url(service.redis_url) as redis:
            names = list(redis.scan_iter(f"chatgate:{keys.redis_namespace}:rate:*"))
            found = [n for n in names if n.startswith(f"chatgate:{keys.redis_namespace}:rate:signin_account:".encode())]
            assert [n for n in found if n.endswith(f":{key}".encode())] != []
            assert redis.get(next(n for n in found if n.endswith(f":{key}".encode()))) == b"12"
        stored_keys = [n.decode() for n in names]
    local_part = email.split("@")[0]
    assert stored_keys and not [k for k in stored_keys if local_part in k or email in k]
