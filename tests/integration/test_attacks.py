"""SECURITY.md's attack list: each is refused with 401, its §6 reason, and nothing created or consumed."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from conftest import Db, Project, Server, make_project
from jwt_tools import b64, hs256, now, raw_token

HS = {"alg": "HS256", "typ": "JWT"}


class Counts:
    TABLES = ("end_users", "sessions", "used_token_ids", "seat_counters WHERE used > 0")

    def __init__(self, db: Db) -> None:
        self.db = db
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        return {
            "end_users": self.db.count("end_users"),
            "sessions": self.db.count("sessions"),
            "used_token_ids": self.db.count("used_token_ids"),
            "seats": self.db.rows("SELECT project_id, used FROM seat_counters ORDER BY project_id"),
        }

    def unchanged(self) -> bool:
        return self.snapshot() == self.before


def exchange(api: httpx.Client, project: Project, code: str) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})


def assert_rejected(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_token"
    assert error["reason"] == reason, error


@pytest.fixture
def counts(db: Db, project: Project) -> Counts:
    return Counts(db)


def test_alg_none_in_every_casing(api: httpx.Client, project: Project, counts: Counts) -> None:
    for alg in ("none", "None", "NONE", "nOnE"):
        token = raw_token({"alg": alg, "typ": "JWT"}, {"user": {"id": "eve"}}, None)
        assert_rejected(exchange(api, project, token), "alg_not_allowed")
        signed = raw_token({"alg": alg}, {"user": {"id": "eve"}}, project.secret)
        assert_rejected(exchange(api, project, signed), "alg_not_allowed")
    assert counts.unchanged()


def test_key_confusion_rs_public_key_used_as_hmac_secret(api: httpx.Client, project: Project, counts: Counts) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert_rejected(exchange(api, project, raw_token(HS, {"user": {"id": "eve"}}, pem)), "bad_signature")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert_rejected(exchange(api, project, raw_token(HS, {"user": {"id": "eve"}}, ec_pem)), "bad_signature")
    # And a genuine RS256 signature: the project's key pins HS256.
    header = b64(json.dumps({"alg": "RS256"}).encode())
    payload = b64(json.dumps({"user": {"id": "eve"}}).encode())
    signature = private.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert_rejected(exchange(api, project, f"{header}.{payload}.{b64(signature)}"), "alg_not_allowed")
    assert counts.unchanged()


def test_signature_stripped_altered_or_wrong(api: httpx.Client, project: Project, counts: Counts) -> None:
    good = hs256(project.secret, {"user": {"id": "eve"}})
    head, body, sig = good.split(".")
    assert_rejected(exchange(api, project, f"{head}.{body}."), "bad_signature")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BA")
    assert_rejected(exchange(api, project, f"{head}.{body}.{flipped}"), "bad_signature")
    assert_rejected(exchange(api, project, hs256("wrong-secret-" + "x" * 40, {"user": {"id": "eve"}})), "bad_signature")
    other_payload = b64(json.dumps({"user": {"id": "mallory"}}).encode())
    assert_rejected(exchange(api, project, f"{head}.{other_payload}.{sig}"), "bad_signature")
    assert counts.unchanged()


def test_another_projects_valid_token(api: httpx.Client, server: Server, project: Project, db: Db) -> None:
    other = make_project(api, project.owner)
    counts = Counts(db)
    assert_rejected(exchange(api, project, hs256(other.secret, {"user": {"id": "eve"}})), "bad_signature")
    # A custom token naming this project but signed with the other's secret.
    claims = {"_id": "eve", "sub": "userexternal", "aud": f"{server.url}/projects/{project.id}"}
    r = api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {hs256(other.secret, claims)}"})
    assert_rejected(r, "bad_signature")
    r = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(other.secret, {"externalId": "eve", "iat": now()})},
    )
    assert_rejected(r, "bad_signature")
    assert counts.unchanged()


def test_time_claims_around_the_leeway(api: httpx.Client, project: Project, counts: Counts) -> None:
    leeway = 30
    assert_rejected(
        exchange(api, project, hs256(project.secret, {"user": {"id": "t"}, "exp": now() - leeway - 5})), "expired"
    )
    assert_rejected(
        exchange(api, project, hs256(project.secret, {"user": {"id": "t"}, "nbf": now() + leeway + 5})), "not_yet_valid"
    )
    assert_rejected(
        exchange(api, project, hs256(project.secret, {"user": {"id": "t"}, "iat": now() + leeway + 5})), "not_yet_valid"
    )
    assert counts.unchanged()
    assert (
        exchange(api, project, hs256(project.secret, {"user": {"id": "t"}, "exp": now() - leeway + 5})).status_code
        == 200
    )
    assert (
        exchange(api, project, hs256(project.secret, {"user": {"id": "t"}, "nbf": now() + leeway - 5})).status_code
        == 200
    )


def test_missing_and_mistyped_claims(api: httpx.Client, project: Project, counts: Counts) -> None:
    cases = [
        ({}, "missing_claim"),
        ({"user": {"email": "a@example.com"}}, "missing_claim"),
        ({"user": "u-1"}, "malformed"),
        ({"user": {"id": ["a"]}}, "invalid_claim"),
        ({"user": {"id": ""}}, "invalid_claim"),
        ({"user": {"id": "x" * 300}}, "invalid_claim"),
        ({"user": {"id": "a", "email": "not-an-email"}}, "invalid_claim"),
        ({"user": {"id": "a"}, "exp": "tomorrow"}, "malformed"),
        ({"user": {"id": "a"}, "exp": True}, "malformed"),
        ({"user": {"id": "a"}, "jti": 5}, "malformed"),
        ({"email": 5}, "invalid_claim"),
    ]
    for claims, reason in cases:
        assert_rejected(exchange(api, project, hs256(project.secret, claims)), reason)
    assert counts.unchanged()


def test_duplicate_names_nan_and_nesting(api: httpx.Client, project: Project, counts: Counts) -> None:
    secret = project.secret
    cases = [
        ('{"alg":"HS256","alg":"none"}', '{"user":{"id":"a"}}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a"},"user":{"id":"admin"}}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a","id":"b"}}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a"},"exp":NaN}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a"},"exp":Infinity}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a"},"exp":1e400}'),
        ('{"alg":"HS256"}', '{"user":{"id":"a"},"x":' + "[" * 40 + "]" * 40 + "}"),
        ('{"alg":"HS256"}', '["not", "an", "object"]'),
        ('{"alg":"HS256","crit":["exp"],"exp":1}', '{"user":{"id":"a"}}'),
        ('{"alg":"HS256","b64":false,"crit":["b64"]}', '{"user":{"id":"a"}}'),
        ('{"typ":"JWT"}', '{"user":{"id":"a"}}'),
    ]
    for header, payload in cases:
        assert_rejected(exchange(api, project, raw_token(header, payload, secret)), "malformed")
    latin1 = '{"user":{"id":"\xe9"}}'.encode("latin-1")
    assert_rejected(exchange(api, project, raw_token('{"alg":"HS256"}', latin1, secret)), "malformed")
    assert counts.unchanged()


def test_non_canonical_base64url(api: httpx.Client, project: Project, counts: Counts) -> None:
    good = hs256(project.secret, {"user": {"id": "b64"}})
    head, body, sig = good.split(".")
    standard = base64.b64encode(base64.urlsafe_b64decode(sig + "==")).decode()
    variants = [
        f"{head}=.{body}.{sig}",
        f"{head}.{body}.{sig}=",
        f"{head}.{body} .{sig}",
        f" {good}",
        f"{head}.{body}.{standard}" if ("+" in standard or "/" in standard) else f"{head}.{body}.{sig[:-1]}+",
        # Same bytes, different text: non-zero unused bits in the last character.
        f"{head}.{body}.{sig[:-1]}{chr(ord(sig[-1]) + 1) if sig[-1] not in 'z9_-' else 'A'}",
        f"{head}.{body}",
        f"{head}.{body}.{sig}.extra",
        "",
    ]
    for token in variants:
        r = exchange(api, project, token)
        if token == "":
            assert r.status_code == 422
            continue
        assert r.status_code == 401, token
        assert r.json()["error"]["reason"] in {"malformed", "bad_signature"}, token
    assert counts.unchanged()


def test_oversized_token(api: httpx.Client, project: Project, counts: Counts) -> None:
    token = hs256(project.secret, {"user": {"id": "big", "padding": "x" * 9000}})
    assert_rejected(exchange(api, project, token), "too_large")
    r = api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {token}"})
    assert_rejected(r, "too_large")
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": "x" * 200_000})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    assert counts.unchanged()


def test_kid_with_path_or_sql_fragments_chooses_nothing(api: httpx.Client, project: Project, counts: Counts) -> None:
    for kid in ("../../../../dev/null", "' OR '1'='1", "x'; DROP TABLE end_users; --", "/etc/passwd"):
        header = {"alg": "HS256", "kid": kid}
        assert_rejected(exchange(api, project, raw_token(header, {"user": {"id": "kid"}}, b"")), "bad_signature")
        assert_rejected(
            exchange(api, project, raw_token(header, {"user": {"id": "kid"}}, "guess" * 10)), "bad_signature"
        )
    assert counts.unchanged()
    # kid is ignored, not trusted: the project's own key still decides.
    ok = raw_token({"alg": "HS256", "kid": "' OR 1=1 --"}, {"user": {"id": "kid"}}, project.secret)
    assert exchange(api, project, ok).status_code == 200


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP endpoint that records any connection made to it."""
    hits: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            hits.append(conn.recv(1024))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/keys.json", hits
    stop.set()
    thread.join(timeout=2)
    sock.close()


def test_jku_x5u_jwk_headers_are_never_followed(
    api: httpx.Client, project: Project, counts: Counts, listener: tuple[str, list[bytes]]
) -> None:
    url, hits = listener
    attacker_key = "attacker-chosen-secret-" + "k" * 30
    jwk = {"kty": "oct", "k": b64(attacker_key.encode())}
    for extra in ({"jku": url}, {"x5u": url}, {"jwk": jwk}, {"x5c": ["MIIB"]}):
        token = raw_token({"alg": "HS256", **extra}, {"user": {"id": "eve"}}, attacker_key)
        assert_rejected(exchange(api, project, token), "unknown_key")
    assert hits == []
    assert counts.unchanged()


def test_replayed_jti_and_a_refused_login_consumes_nothing(api: httpx.Client, project: Project, db: Db) -> None:
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 0}}, headers=project.owner.auth)
    token = hs256(project.secret, {"user": {"id": "once"}, "jti": "j-1", "exp": now() + 600})
    r = exchange(api, project, token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "seat_limit_reached"
    assert db.count("used_token_ids", "jti = 'j-1'") == 0
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"seat_limit": 1}}, headers=project.owner.auth)
    assert exchange(api, project, token).status_code == 200
    sessions = db.count("sessions")
    assert_rejected(exchange(api, project, token), "replayed")
    assert db.count("sessions") == sessions


def test_a_consumed_jti_is_kept_while_its_token_could_still_be_accepted(
    api: httpx.Client, project: Project, db: Db
) -> None:
    """Housekeeping forgets a jti only once its token is refused as expired, leeway included."""
    api.patch(f"/v1/projects/{project.id}", json={"settings": {"leeway_seconds": 120}}, headers=project.owner.auth)
    exp = now() + 5
    assert exchange(
        api, project, hs256(project.secret, {"user": {"id": "kept"}, "jti": "j-kept", "exp": exp})
    ).is_success
    (stored,) = db.rows("SELECT expires_at FROM used_token_ids WHERE jti = 'j-kept'")[0]
    moment = stored if isinstance(stored, datetime) else datetime.fromisoformat(str(stored))
    assert moment.replace(tzinfo=UTC).timestamp() >= exp + 120


def test_nul_characters_are_refused_everywhere(api: httpx.Client, project: Project, counts: Counts) -> None:
    assert_rejected(exchange(api, project, hs256(project.secret, {"user": {"id": "a\u0000b"}})), "malformed")
    assert_rejected(
        exchange(api, project, hs256(project.secret, {"user": {"id": "a", "note": "x\u0000"}})), "malformed"
    )
    r = api.post(
        "/v1/auth/signup",
        json={"email": "nul@example.com", "password": "long enough pass", "firstname": "a\u0000", "lastname": "b"},
    )
    assert r.status_code == 422 and "firstname" in r.json()["error"]["fields"]
    auth = project.owner.auth
    assert api.get(f"/v1/projects/{project.id}/users", params={"q": "a\u0000"}, headers=auth).status_code == 400
    assert api.get(f"/v1/projects/{project.id}/users/a%00b", headers=auth).status_code == 400
    assert counts.unchanged()
