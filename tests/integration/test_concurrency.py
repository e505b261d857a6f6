"""Races: seat limits and first sight must hold under simultaneous logins (two server processes)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import Db, Project, Server
from jwt_tools import hs256, now

pytestmark = pytest.mark.slow


def burst(server: Server, requests: list[tuple[str, dict[str, object]]]) -> list[httpx.Response]:
    """Send all requests at the same moment: one thread each, released together by a barrier."""
    start = threading.Barrier(len(requests))
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    with httpx.Client(base_url=server.url, timeout=60, limits=limits) as client:

        def send(request: tuple[str, dict[str, object]]) -> httpx.Response:
            start.wait()
            return client.post(request[0], json=request[1])

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(send, requests))


def test_seat_limit_race_creates_exactly_n_users(api: httpx.Client, server: Server, project: Project, db: Db) -> None:
    limit, attempts = 5, 40
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": limit}}, headers=project.owner.auth)
    path = f"/v1/projects/{project.id}/auth/external-code"
    requests = [
        (path, {"externalAuthCode": hs256(project.secret, {"user": {"id": f"racer-{i}"}})}) for i in range(attempts)
    ]
    responses = burst(server, requests)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: limit, 403: attempts - limit}, statuses
    assert all(r.json()["error"]["code"] == "seat_limit_reached" for r in responses if r.status_code == 403)
    assert db.count("end_users", "project_id = :p", p=project.id) == limit
    assert db.rows("SELECT SUM(used) FROM seat_counters WHERE project_id = :p", p=project.id)[0][0] == limit
    # At the limit, existing users still sign in and visitors still get in.
    winner = next(r for r in responses if r.status_code == 200).json()["user"]["externalId"]
    again = api.post(path, json={"externalAuthCode": hs256(project.secret, {"user": {"id": winner}})})
    assert again.status_code == 200
    assert api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).status_code == 200


def test_simultaneous_first_logins_of_one_user_create_one_user(server: Server, project: Project, db: Db) -> None:
    code_path = f"/v1/projects/{project.id}/auth/external-code"
    kustomer_path = f"/v1/projects/{project.id}/auth/customer/login"
    requests: list[tuple[str, dict[str, object]]] = []
    for _ in range(15):
        requests.append((code_path, {"externalAuthCode": hs256(project.secret, {"user": {"id": "same-person"}})}))
        requests.append(
            (kustomer_path, {"jwtToken": hs256(project.secret, {"email": "same@example.com", "iat": now()})})
        )
    responses = burst(server, requests)
    assert [r.status_code for r in responses] == [200] * len(requests), [
        r.text for r in responses if r.status_code != 200
    ]
    assert len({r.json()["user"]["_id"] for r in responses[0::2]}) == 1
    assert len({r.json()["user"]["_id"] for r in responses[1::2]}) == 1
    assert sum(r.json().get("created", False) for r in responses[0::2]) == 1
    assert db.count("end_users", "project_id = :p", p=project.id) == 2
    assert db.rows("SELECT SUM(used) FROM seat_counters WHERE project_id = :p", p=project.id)[0][0] == 2


def test_the_same_jti_raced_is_used_once(server: Server, project: Project, db: Db) -> None:
    token = hs256(project.secret, {"user": {"id": "jti-racer"}, "jti": "race-1", "exp": now() + 300})
    path = f"/v1/projects/{project.id}/auth/external-code"
    responses = burst(server, [(path, {"externalAuthCode": token})] * 20)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 401: 19}, statuses
    assert all(r.json()["error"]["reason"] == "replayed" for r in responses if r.status_code == 401)
    assert db.count("sessions", "subject_id IN (SELECT id FROM end_users WHERE external_id = 'jti-racer')") == 1


def test_racing_email_sign_ups_leave_one_owner(server: Server, project: Project, db: Db) -> None:
    path = f"/v1/projects/{project.id}/auth/email/signup"
    requests = [(path, {"email": "contested@example.com", "password": f"password number {i} !"}) for i in range(12)]
    responses = burst(server, requests)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 11}, statuses
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    assert db.count("end_users", "email = 'contested@example.com'") == 1
    # Only the winner's password opens the account.
    with httpx.Client(base_url=server.url) as api:
        signin = f"/v1/projects/{project.id}/auth/email/signin"
        for i in (winner, (winner + 1) % 12):
            r = api.post(signin, json={"email": "contested@example.com", "password": f"password number {i} !"})
            assert r.status_code == (200 if i == winner else 401)


def test_a_limit_set_after_unlimited_first_logins_counts_them_all(
    api: httpx.Client, server: Server, project: Project, db: Db
) -> None:
    """Without a limit, seats are counted on several rows; a limit set later still counts every one of them."""
    path = f"/v1/projects/{project.id}/auth/external-code"
    early = [(path, {"externalAuthCode": hs256(project.secret, {"user": {"id": f"early-{i}"}})}) for i in range(12)]
    assert {r.status_code for r in burst(server, early)} == {200}
    assert db.rows("SELECT COUNT(*) FROM seat_counters WHERE project_id = :p AND used > 0", p=project.id)[0][0] > 1
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 15}}, headers=project.owner.auth)
    late = [(path, {"externalAuthCode": hs256(project.secret, {"user": {"id": f"late-{i}"}})}) for i in range(10)]
    statuses = Counter(r.status_code for r in burst(server, late))
    assert statuses == {200: 3, 403: 7}, statuses
    users = api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth).json()
    assert users["seats"] == {"used": 15, "limit": 15}
    assert db.count("end_users", "project_id = :p", p=project.id) == 15
