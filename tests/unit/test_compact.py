"""The strict JWS reader, without a server."""

from __future__ import annotations

import pytest

from chatgate.crypto.compact import MAX_TOKEN_BYTES, b64url_decode, parse_compact, unverified_claims
from chatgate.errors import TokenRejected
from jwt_tools import b64, raw_token


def reason(token: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        unverified_claims(token)
    return caught.value.reason


def test_reads_an_honest_token() -> None:
    token = raw_token({"alg": "HS256", "typ": "JWT"}, {"sub": "x", "n": 1.5}, "k" * 32)
    jws = parse_compact(token)
    assert jws.alg == "HS256"
    assert unverified_claims(token) == {"sub": "x", "n": 1.5}


@pytest.mark.parametrize(
    ("segment", "ok"),
    [("", True), ("QQ", True), ("QR", False), ("QQ==", False), ("Q+/A", False), ("Q", False), ("QUJD", True)],
)
def test_base64url_must_be_canonical(segment: str, ok: bool) -> None:
    if ok:
        b64url_decode(segment)
    else:
        with pytest.raises(TokenRejected):
            b64url_decode(segment)


def test_refusals() -> None:
    secret = "k" * 32
    assert reason("a.b") == "malformed"
    assert reason("x" * (MAX_TOKEN_BYTES + 1)) == "too_large"
    assert reason(raw_token('{"alg":"HS256","alg":"HS512"}', "{}", secret)) == "malformed"
    assert reason(raw_token('{"alg":"HS256"}', '{"a":1,"a":2}', secret)) == "malformed"
    assert reason(raw_token('{"alg":"HS256"}', '{"a":-Infinity}', secret)) == "malformed"
    assert reason(raw_token('{"alg":"HS256"}', '{"a":' + '{"b":' * 9 + "1" + "}" * 9 + "}", secret)) == "malformed"
    assert reason(raw_token('{"alg":"HS256","crit":["zip"]}', "{}", secret)) == "malformed"
    assert reason(raw_token('{"alg":"HS256","jku":"http://x"}', "{}", secret)) == "unknown_key"
    assert reason(raw_token('{"alg":5}', "{}", secret)) == "malformed"
    assert reason(raw_token('"just a string"', "{}", secret)) == "malformed"
    assert reason("é." + b64(b"{}") + ".") == "malformed"


def test_nesting_up_to_the_bound_is_fine() -> None:
    nested = '{"a":' * 7 + "1" + "}" * 7
    assert unverified_claims(raw_token('{"alg":"HS256"}', nested, "k" * 32))
