"""Every input path is total: odd numbers, deep JSON, huge claims and unstorable text get a
clear 4xx with a stable code, never a 5xx, and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Db, Project
from jwt_tools import hs256, now, raw_token

ODD_LIMITS = ["\u00b2", "\u2460", "9" * 5000, "-1", "0", "1e3", "1.5", " 5", "\uff15", "201"]


@pytest.mark.parametrize("path", ["users", "audit"])
def test_query_numbers_are_ascii_decimals_within_bounds(api: httpx.Client, project: Project, path: str) -> None:
    for limit in ODD_LIMITS:
        for headers in ({}, project.owner.auth):
            r = api.get(f"/v1/projects/{project.id}/{path}", params={"limit": limit}, headers=headers)
            assert r.status_code == 422, (limit, r.text)
            assert r.json()["error"]["fields"] == {"limit": "must be a whole number from 1 to 200"}
    assert api.get(f"/v1/projects/{project.id}/{path}?limit=200", headers=project.owner.auth).status_code == 200


def deep(levels: int) -> bytes:
    return b'{"settings":' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"


def test_json_nesting_is_bounded(api: httpx.Client, project: Project) -> None:
    for levels in (40, 1000, 5000):
        r = api.patch(
            f"/v1/projects/{project.id}",
            content=deep(levels),
            headers={**project.owner.auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, (levels, r.text)
        assert r.json()["error"]["code"] == "malformed_json"
    r = api.post("/v1/auth/signinAnonymously", content=b"[" * 1000 + b"]" * 1000)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    # Within the bound, the body is read and judged on its fields.
    r = api.patch(
        f"/v1/projects/{project.id}",
        content=deep(20),
        headers={**project.owner.auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    "claims",
    [
        {"user": {"id": "a"}, "exp": 10**400},
        {"user": {"id": "a"}, "exp": -(10**400)},
        {"user": {"id": "a"}, "nbf": 10**400},
        {"user": {"id": "a"}, "iat": 10**400},
        {"user": {"id": "a"}, "exp": 2**60},
    ],
)
def test_out_of_range_time_claims_are_malformed_tokens(
    api: httpx.Client, project: Project, db: Db, claims: dict[str, Any]
) -> None:
    before = db.count("end_users")
    code = raw_token({"alg": "HS256", "typ": "JWT"}, claims, project.secret)
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["reason"] == "malformed"
    jwt = raw_token(
        {"alg": "HS256"}, {"externalId": "a", **{k: v for k, v in claims.items() if k != "user"}}, project.secret
    )
    r = api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": jwt})
    assert r.status_code == 401 and r.json()["error"]["reason"] == "malformed"
    assert db.count("end_users") == before


def test_text_no_database_can_store_is_a_422(api: httpx.Client, project: Project, db: Db) -> None:
    before = db.count("end_users")
    bodies = [
        b'{"id_project": "%s", "firstname": "a\\u0000b"}' % project.id.encode(),
        b'{"id_project": "%s", "firstname": "a\\ud800b"}' % project.id.encode(),
        b'{"id_project": "%s", "lastname": "\\udfff"}' % project.id.encode(),
    ]
    for body in bodies:
        r = api.post("/v1/auth/signinAnonymously", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()["error"]["fields"]) <= {"firstname", "lastname"}
    r = api.post(
        f"/v1/projects/{project.id}/auth/email/signup",
        content=b'{"email": "\\ud800@example.com", "password": "a sturdy passphrase 42"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "email" in r.json()["error"]["fields"]
    # The same text inside a signed token is a malformed token.
    payload = '{"user": {"id": "a", "note": "\\ud800"}, "iat": ' + str(now()) + "}"
    r = api.post(
        f"/v1/projects/{project.id}/auth/external-code",
        json={"externalAuthCode": raw_token('{"alg":"HS256"}', payload, project.secret)},
    )
    assert r.status_code == 401 and r.json()["error"]["reason"] == "malformed"
    assert db.count("end_users") == before


def test_a_body_that_is_not_json_stays_a_400(api: httpx.Client, project: Project) -> None:
    for body in (b"{", b"not json", b'{"a": NaN}', b'{"a": "\\ud800", }'):
        r = api.post("/v1/auth/signinAnonymously", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "malformed_json"
    honest = hs256(project.secret, {"user": {"id": "fine"}})
    assert (
        api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": honest}).status_code == 200
    )
