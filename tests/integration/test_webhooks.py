"""Webhooks (issue 10 §4) against real servers and a real receiver on this machine.

The servers here allow private addresses (``CHATGATE_WEBHOOK_ALLOW_PRIVATE=1``,
the receiver listens on 127.0.0.1) and retry after 1, 2, 4 … seconds
(``CHATGATE_WEBHOOK_RETRY_BASE_SECONDS=1``), except the one that checks the
refusals. Each runs on a database of its own: every server process sends the
due deliveries of its whole database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import PASSWORD, POSTGRES_URL, Db, Project, Server, Staff, make_project, sign_up_staff, start_server
from jwt_tools import hs256

ALL_EVENTS = ["user.created", "user.signed_in", "conversation.created", "message.created", "conversation.merged"]
FAST_RETRIES = {"CHATGATE_WEBHOOK_ALLOW_PRIVATE": "1", "CHATGATE_WEBHOOK_RETRY_BASE_SECONDS": "1"}
SERVER_KEY = "ab" * 32  # the same key across a restart, so the sealed webhook secrets still open


# -- a receiver ------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST; ``answers[path]`` are the statuses to give, in turn."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def new_path(self, *answers: int) -> str:
        path = f"/hook-{secrets.token_hex(4)}"
        self.answers[path] = list(answers)
        return path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.at(path))} requests, expected {count}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body, time.time()))
                planned = receiver.answers.get(self.path, [])
                status = planned.pop(0) if len(planned) > 1 else (planned[0] if planned else 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(box))
    box.port = http.server_address[1]
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        http.shutdown()
        http.server_close()


# -- servers of their own --------------------------------------------------


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[Callable[[], str]]:
    """Makes PostgreSQL databases for this module's servers; drops them at the end."""
    if not POSTGRES_URL:
        pytest.skip("needs CHATGATE_TEST_POSTGRES_URL")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"chatgate_hooks_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("fresh_database")() if backend == "postgresql" else None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hook_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = _database_url(request.param, request)
    server = start_server(tmp_path_factory.mktemp(f"hooks-{request.param}"), url, extra_env=FAST_RETRIES)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hapi(hook_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hook_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def hdb(hook_server: Server) -> Db:
    return Db(hook_server.engine)


@pytest.fixture
def howner(hapi: httpx.Client) -> Staff:
    return sign_up_staff(hapi, "hooks")


@pytest.fixture
def hproject(hapi: httpx.Client, howner: Staff) -> Project:
    return make_project(hapi, howner)


def register(api: httpx.Client, project: Project, url: str, events: list[str]) -> dict[str, Any]:
    r = api.post(f"/v1/projects/{project.id}/webhooks", json={"url": url, "events": events}, headers=project.owner.auth)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def deliveries(api: httpx.Client, project: Project, hook_id: str, **query: Any) -> dict[str, Any]:
    r = api.get(f"/v1/projects/{project.id}/webhooks/{hook_id}/deliveries", params=query, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def verify(received: Received, secret: str, tolerance: int = 300) -> dict[str, Any]:
    """What a receiver should do (docs/api.md, Webhooks): check the signature and the timestamp, then read."""
    parts = dict(item.split("=", 1) for item in received.headers["Chatgate-Signature"].split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "signature does not verify"
    assert abs(time.time() - timestamp) <= tolerance
    return received.json


def anonymous(api: httpx.Client, project: Project) -> dict[str, Any]:
    r = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# -- managing webhooks -----------------------------------------------------


def test_staff_register_list_and_delete_webhooks_and_see_the_secret_once(
    hapi: httpx.Client, hproject: Project, hdb: Db, receiver: Receiver
) -> None:
    auth = hproject.owner.auth
    base = f"/v1/projects/{hproject.id}/webhooks"
    created = register(hapi, hproject, receiver.url("/x"), ["message.created", "user.created", "message.created"])
    assert created["events"] == ["user.created", "message.created"]
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert set(created) == {"id", "url", "events", "createdAt"}

    listed = hapi.get(base, headers=auth)
    assert listed.status_code == 200
    assert listed.json() == {"webhooks": [created]}
    assert secret not in listed.text and "secret" not in listed.text
    (sealed,) = hdb.rows("SELECT secret_sealed FROM webhooks WHERE id = :id", id=created["id"])
    assert secret.encode() not in bytes(sealed[0])  # sealed at rest

    audit = hapi.get(f"/v1/projects/{hproject.id}/audit", params={"action": "project:webhook:created"}, headers=auth)
    assert [e["subjectId"] for e in audit.json()["events"]] == [created["id"]]

    r = hapi.delete(f"{base}/{created['id']}", headers=auth)
    assert r.status_code == 200 and r.json() == {"success": True, "id": created["id"], "deleted": True}
    assert hapi.get(base, headers=auth).json() == {"webhooks": []}
    again = hapi.delete(f"{base}/{created['id']}", headers=auth)
    assert again.status_code == 404 and again.json()["error"]["code"] == "webhook_not_found"


def test_bad_registrations_are_422_and_change_nothing(hapi: httpx.Client, hproject: Project, hdb: Db) -> None:
    base = f"/v1/projects/{hproject.id}/webhooks"
    auth = hproject.owner.auth
    cases: list[tuple[Any, set[str]]] = [
        ({"url": "https://hooks.example.com/", "events": ["user.deleted"]}, {"events"}),
        ({"url": "https://hooks.example.com/", "events": []}, {"events"}),
        ({"url": "ftp://hooks.example.com/", "events": ["user.created"]}, {"url"}),
        ({"url": "not a url", "events": ["nope"]}, {"url", "events"}),
        ({"url": "https://hooks.example.com/", "events": "user.created"}, {"events"}),
        ({"url": 5, "events": ["user.created"]}, {"url"}),
        ({"events": ["user.created"]}, {"url"}),
        ({"url": "https://hooks.example.com/", "events": ["user.created"] * 17}, {"events"}),
    ]
    for body, fields in cases:
        r = hapi.post(base, json=body, headers=auth)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_failed" and set(error["fields"]) == fields, (body, error)
    unknown = hapi.post(base, json={"url": "https://hooks.example.com/", "events": ["user.deleted"]}, headers=auth)
    assert "user.deleted" in unknown.json()["error"]["fields"]["events"]
    assert hdb.count("webhooks", "project_id = :p", p=hproject.id) == 0


def test_another_projects_webhooks_are_404(hapi: httpx.Client, hproject: Project, receiver: Receiver) -> None:
    other = make_project(hapi, sign_up_staff(hapi, "rival"))
    theirs = register(hapi, other, receiver.url("/theirs"), ["user.created"])
    mine = f"/v1/projects/{hproject.id}/webhooks/{theirs['id']}"
    for method, path in (
        ("DELETE", mine),
        ("GET", f"{mine}/deliveries"),
        ("POST", f"{mine}/deliveries/{theirs['id']}/resend"),
    ):
        r = hapi.request(method, path, headers=hproject.owner.auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found", (method, r.text)
    # Their project itself answers 404 to an outsider, as for API keys.
    r = hapi.get(f"/v1/projects/{other.id}/webhooks", headers=hproject.owner.auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "project_not_found"
    r = hapi.post(
        f"/v1/projects/{other.id}/webhooks",
        json={"url": receiver.url("/x"), "events": ["user.created"]},
        headers=hproject.owner.auth,
    )
    assert r.status_code == 404
    end_user = anonymous(hapi, hproject)["token"]
    r = hapi.get(f"/v1/projects/{hproject.id}/webhooks", headers={"Authorization": end_user})
    assert r.status_code == 403
    assert hapi.get(f"/v1/projects/{other.id}/webhooks", headers=other.owner.auth).json()["webhooks"] != []


# -- deliveries ------------------------------------------------------------


def test_events_arrive_signed_as_documented(hapi: httpx.Client, hproject: Project, receiver: Receiver) -> None:
    everything = receiver.new_path()
    messages_only = receiver.new_path()
    hook = register(hapi, hproject, receiver.url(everything), ALL_EVENTS)
    register(hapi, hproject, receiver.url(messages_only), ["message.created"])
    elsewhere = receiver.new_path()
    register(hapi, make_project(hapi, sign_up_staff(hapi, "elsewhere")), receiver.url(elsewhere), ALL_EVENTS)

    visitor = anonymous(hapi, hproject)
    visitor_auth = {"Authorization": visitor["token"]}
    conversation = hapi.post(f"/v1/projects/{hproject.id}/conversations", json={"title": "Hi"}, headers=visitor_auth)
    assert conversation.status_code == 201
    cid = conversation.json()["id"]
    message = hapi.post(
        f"/v1/projects/{hproject.id}/conversations/{cid}/messages", json={"text": "héllo"}, headers=visitor_auth
    )
    assert message.status_code == 201
    # Signing up with the visitor's token merges its conversation into the new account.
    signed_up = hapi.post(
        f"/v1/projects/{hproject.id}/auth/email/signup",
        json={
            "email": f"u-{secrets.token_hex(4)}@example.com",
            "password": PASSWORD,
            "anonymous_token": visitor["token"],
        },
    )
    assert signed_up.status_code == 200, signed_up.text

    got = receiver.wait_for(everything, 7)
    time.sleep(1.5)  # nothing more comes
    assert len(receiver.at(everything)) == 7
    bodies = {}
    for received in got:
        body = verify(received, hook["secret"])
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["Chatgate-Delivery"] == body["id"]
        assert received.headers["Chatgate-Event"] == body["type"]
        assert body["projectId"] == hproject.id
        assert datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00")) <= datetime.now(UTC)
        assert set(body) == {"id", "type", "createdAt", "projectId", "data"}
        bodies.setdefault(body["type"], []).append(body["data"])
    assert sorted((kind, len(items)) for kind, items in bodies.items()) == [
        ("conversation.created", 1),
        ("conversation.merged", 1),
        ("message.created", 1),
        ("user.created", 2),
        ("user.signed_in", 2),
    ]
    visitor_id, member_id = visitor["user"]["_id"], signed_up.json()["user"]["_id"]
    assert sorted(d["user"]["_id"] for d in bodies["user.created"]) == sorted([visitor_id, member_id])
    assert "password_hash" not in json.dumps(bodies) and "passwordHash" not in json.dumps(bodies)
    methods = sorted((d["method"], d["created"], d["user"]["_id"]) for d in bodies["user.signed_in"])
    assert methods == sorted([("anonymous", True, visitor_id), ("email_signup", True, member_id)])
    assert bodies["conversation.created"][0]["conversation"]["id"] == cid
    assert bodies["message.created"][0] == {"conversationId": cid, "message": message.json()}
    merged = bodies["conversation.merged"][0]
    assert merged["conversationId"] == cid and merged["fromUserId"] == visitor_id
    assert merged["conversation"]["userId"] == member_id

    (only,) = receiver.wait_for(messages_only, 1)
    assert only.json["type"] == "message.created"
    assert receiver.at(elsewhere) == []

    listed = deliveries(hapi, hproject, hook["id"])
    assert len(listed["deliveries"]) == 7 and listed["next_cursor"] is None
    for d in listed["deliveries"]:
        assert d["status"] == "delivered" and d["attempts"] == 1 and d["lastStatusCode"] == 200
        assert d["nextAttemptAt"] is None and d["deliveredAt"] is not None and d["lastError"] is None
    assert {d["id"] for d in listed["deliveries"]} == {r.json["id"] for r in got}


def test_every_sign_in_of_a_returning_user_is_announced(
    hapi: httpx.Client, hproject: Project, receiver: Receiver
) -> None:
    path = receiver.new_path()
    register(hapi, hproject, receiver.url(path), ["user.signed_in"])
    code = hs256(hproject.secret, {"user": {"id": "regular", "firstname": "Ada"}})
    for _ in range(3):
        r = hapi.post(f"/v1/projects/{hproject.id}/auth/external-code", json={"externalAuthCode": code})
        assert r.status_code == 200, r.text
    got = [received.json["data"] for received in receiver.wait_for(path, 3)]
    assert sorted(d["created"] for d in got) == [False, False, True]
    assert {(d["user"]["externalId"], d["user"]["firstname"], d["method"]) for d in got} == {
        ("regular", "Ada", "external_auth_code")
    }


def test_each_delivery_is_sent_once_by_one_of_the_processes(
    hapi: httpx.Client, hproject: Project, receiver: Receiver
) -> None:
    path = receiver.new_path()
    register(hapi, hproject, receiver.url(path), ["user.created"])
    for _ in range(30):
        anonymous(hapi, hproject)
    receiver.wait_for(path, 30)
    time.sleep(1.5)
    ids = [r.json["id"] for r in receiver.at(path)]
    assert len(ids) == 30 and len(set(ids)) == 30


def test_a_failed_attempt_is_retried_with_backoff_then_delivered_and_can_be_resent(
    hapi: httpx.Client, hproject: Project, receiver: Receiver
) -> None:
    path = receiver.new_path(500, 503, 200)
    hook = register(hapi, hproject, receiver.url(path), ["user.created"])
    anonymous(hapi, hproject)
    receiver.wait_for(path, 1)

    def failed_once() -> bool:
        (d,) = deliveries(hapi, hproject, hook["id"])["deliveries"]
        return d["attempts"] >= 1 and d["lastStatusCode"] is not None

    wait_until(failed_once, what="the first attempt's outcome")
    (pending,) = deliveries(hapi, hproject, hook["id"])["deliveries"]
    if pending["status"] == "pending":  # else the retries were quicker than this look
        assert pending["lastStatusCode"] in (500, 503) and pending["lastError"].startswith("HTTP 50")
        assert pending["nextAttemptAt"] is not None

    first, second, third = receiver.wait_for(path, 3)
    assert first.json["id"] == second.json["id"] == third.json["id"]  # the same delivery each time
    assert second.at - first.at >= 0.9 and third.at - second.at >= 1.9  # 1 s, then 2 s

    wait_until(lambda: deliveries(hapi, hproject, hook["id"])["deliveries"][0]["status"] == "delivered")
    (done,) = deliveries(hapi, hproject, hook["id"])["deliveries"]
    assert done["attempts"] == 3 and done["lastStatusCode"] == 200 and done["lastError"] is None

    resend = f"/v1/projects/{hproject.id}/webhooks/{hook['id']}/deliveries/{done['id']}/resend"
    r = hapi.post(resend, headers=hproject.owner.auth)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["id"] == done["id"]
    fourth = receiver.wait_for(path, 4)[3]
    assert fourth.json["id"] == done["id"]
    # attempts counts the claim; the outcome is recorded a moment after the receiver answered.
    wait_until(lambda: deliveries(hapi, hproject, hook["id"])["deliveries"][0]["status"] == "delivered")
    assert deliveries(hapi, hproject, hook["id"])["deliveries"][0]["attempts"] == 4

    missing = hapi.post(resend.replace(done["id"], "0" * 24), headers=hproject.owner.auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "delivery_not_found"


def test_deliveries_are_listed_newest_first_a_page_at_a_time(
    hapi: httpx.Client, hproject: Project, receiver: Receiver
) -> None:
    path = receiver.new_path()
    hook = register(hapi, hproject, receiver.url(path), ["user.created"])
    for _ in range(5):
        anonymous(hapi, hproject)
    receiver.wait_for(path, 5)
    wait_until(lambda: len(deliveries(hapi, hproject, hook["id"], status="delivered")["deliveries"]) == 5)
    seen: list[str] = []
    cursor = None
    while True:
        page = deliveries(hapi, hproject, hook["id"], limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [d["id"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    assert deliveries(hapi, hproject, hook["id"], status="failed")["deliveries"] == []
    r = hapi.get(
        f"/v1/projects/{hproject.id}/webhooks/{hook['id']}/deliveries",
        params={"status": "lost"},
        headers=hproject.owner.auth,
    )
    assert r.status_code == 422 and set(r.json()["error"]["fields"]) == {"status"}


def test_a_delivery_that_keeps_failing_is_failed_once_a_day_has_passed(
    hapi: httpx.Client, hproject: Project, receiver: Receiver, hdb: Db
) -> None:
    path = receiver.new_path(500)
    hook = register(hapi, hproject, receiver.url(path), ["user.created"])
    anonymous(hapi, hproject)
    receiver.wait_for(path, 2)  # retried
    # A day passes.
    hdb.execute(
        "UPDATE webhook_deliveries SET created_at = :then WHERE webhook_id = :w",
        then=datetime(2020, 1, 1, tzinfo=UTC),
        w=hook["id"],
    )
    wait_until(lambda: deliveries(hapi, hproject, hook["id"])["deliveries"][0]["status"] == "failed", timeout=30)
    (failed,) = deliveries(hapi, hproject, hook["id"])["deliveries"]
    assert failed["lastStatusCode"] == 500 and failed["lastError"] == "HTTP 500" and failed["nextAttemptAt"] is None
    count = len(receiver.at(path))
    time.sleep(2.5)
    assert len(receiver.at(path)) == count  # no more attempts


def test_a_deleted_webhook_takes_its_deliveries_with_it(
    hapi: httpx.Client, hproject: Project, receiver: Receiver, hdb: Db
) -> None:
    path = receiver.new_path(500)
    hook = register(hapi, hproject, receiver.url(path), ["user.created"])
    anonymous(hapi, hproject)
    receiver.wait_for(path, 1)
    assert hapi.delete(f"/v1/projects/{hproject.id}/webhooks/{hook['id']}", headers=hproject.owner.auth).is_success
    assert hdb.count("webhook_deliveries", "webhook_id = :w", w=hook["id"]) == 0
    count = len(receiver.at(path))
    time.sleep(2.5)
    assert len(receiver.at(path)) == count


# -- a server killed right after the event ------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_delivery_survives_a_server_killed_right_after_its_event(
    tmp_path: Path, request: pytest.FixtureRequest, receiver: Receiver, backend: str
) -> None:
    env = {**FAST_RETRIES, "CHATGATE_SERVER_KEY": SERVER_KEY}
    (tmp_path / "kept").mkdir()
    url = _database_url(backend, request) or f"sqlite:///{tmp_path / 'kept' / 'chatgate.db'}"
    path = receiver.new_path()
    first = start_server(tmp_path, url, workers=1, extra_env=env)
    try:
        with httpx.Client(base_url=first.url, timeout=30) as api:
            project = make_project(api, sign_up_staff(api, "crash"))
            hook = register(api, project, receiver.url(path), ["user.created", "user.signed_in"])
            anonymous(api, project)
            first.process.kill()  # SIGKILL: no shutdown of any kind
        first.process.wait(timeout=10)
    finally:
        if first.process.poll() is None:
            first.process.kill()
        first.engine.dispose()
    stored = Db(create_engine(url))
    assert stored.count("webhook_deliveries", "webhook_id = :w", w=hook["id"]) == 2  # committed with the login

    second = start_server(tmp_path, url, workers=1, extra_env=env)
    try:
        got = receiver.wait_for(path, 2, timeout=90)  # within a second, or after a lost send's lease lapses
        assert {verify(r, hook["secret"])["type"] for r in got} == {"user.created", "user.signed_in"}
        wait_until(
            lambda: stored.count("webhook_deliveries", "webhook_id = :w AND status = 'delivered'", w=hook["id"]) == 2,
            timeout=90,
        )
    finally:
        second.stop()
        stored.engine.dispose()


# -- without CHATGATE_WEBHOOK_ALLOW_PRIVATE -----------------------------------


def _private_name() -> str | None:
    """A host name (not localhost) this machine resolves to a non-public address, if it has one."""
    import ipaddress

    for name in (socket.gethostname(), socket.getfqdn()):
        if not name or name.rstrip(".").lower() == "localhost" or name.lower().endswith(".localhost"):
            continue
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if addresses and any(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
            return name
    return None


def test_without_the_operator_flag_private_addresses_and_plain_http_are_refused(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = start_server(tmp_path, None, workers=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            project = make_project(api, sign_up_staff(api, "strict"))
            base = f"/v1/projects/{project.id}/webhooks"
            for url, says in (
                (receiver.url("/plain"), "https://"),
                ("http://hooks.example.com/in", "https://"),
                (f"https://127.0.0.1:{receiver.port}/in", "public address"),
                ("https://10.1.2.3/in", "public address"),
                ("https://169.254.169.254/latest", "public address"),
                ("https://[::1]/in", "public address"),
                ("https://localhost/in", "public address"),
            ):
                r = api.post(base, json={"url": url, "events": ["user.created"]}, headers=project.owner.auth)
                assert r.status_code == 422, (url, r.text)
                assert says in r.json()["error"]["fields"]["url"], (url, r.text)
                assert "CHATGATE_WEBHOOK_ALLOW_PRIVATE" in r.json()["error"]["fields"]["url"]
            assert Db(server.engine).count("webhooks") == 0

            name = _private_name()
            if name is None:
                pytest.skip("no host name here resolves to a private address")
            hook = register(api, project, f"https://{name}:{receiver.port}/named", ["user.created"])
            anonymous(api, project)

            def attempted() -> bool:
                found = deliveries(api, project, hook["id"])["deliveries"]
                return bool(found) and found[0]["attempts"] >= 1 and found[0]["lastError"] is not None

            wait_until(attempted, what="the refused attempt")
            (refused,) = deliveries(api, project, hook["id"])["deliveries"]
            assert refused["status"] == "pending" and refused["lastStatusCode"] is None
            assert f"{name} resolves to" in refused["lastError"] and "not a public address" in refused["lastError"]
            assert receiver.at("/named") == []
    finally:
        server.stop()
