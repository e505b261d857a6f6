"""Project Wycheproof's JWS vectors through the verifier's signature layer.

Each group's key becomes a VerificationKey (which pins the key's one alg);
every test's compact JWS goes through the strict reader and the signature
check. Cases 372 and 373 are labelled valid but their MAC does not match the
signing input they insert `?` into: they must be refused (vectors/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatgate.crypto.compact import parse_compact
from chatgate.crypto.tokens import KeyError_, VerificationKey, verify_signature
from chatgate.errors import TokenRejected

# Project Wycheproof's JWS vectors (C2SP/wycheproof, Apache-2.0: tests/vectors/LICENSE-wycheproof),
# committed so the test runs on any checkout.
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "json_web_signature_test.json"
MUST_REJECT_DESPITE_LABEL = {372, 373}

# Where Chatgate's rules are stricter than a vector's label, on purpose:
REFUSED_BY_POLICY = {
    # The key pins PS256; the token's header says PS384. SECURITY.md: the key
    # chooses the one algorithm, any other is refused.
    346: "key alg PS256, token alg PS384",
    350: "key alg PS256, token alg PS384",
    # The key names "ES521", which is no algorithm; a key must pin a real one.
    347: "key alg ES521 is not an algorithm",
    351: "key alg ES521 is not an algorithm",
}
# The copy of the file has these byte-identical to tc357 (valid), so they
# cannot be refused without refusing 357; the padded forms they describe are
# refused in test_padded_base64_is_refused below.
SAME_AS_VALID_357 = {367, 370}


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def _cases() -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    cases = []
    for group in _vectors()["testGroups"]:
        key = group.get("public") or group["private"]
        for test in group["tests"]:
            cases.append((test["tcId"], key, test))
    return cases


def accepts(key_jwk: dict[str, Any], jws: str) -> bool:
    try:
        key = VerificationKey.from_jwk(key_jwk)
    except KeyError_:
        return False
    try:
        verify_signature(parse_compact(jws), key)
    except TokenRejected:
        return False
    return True


CASES = _cases()


def test_all_401_vectors_are_present() -> None:
    assert len(CASES) == _vectors()["numberOfTests"] == 401


@pytest.mark.parametrize(("tc_id", "key", "test"), CASES, ids=[f"tc{c[0]}" for c in CASES])
def test_vector(tc_id: int, key: dict[str, Any], test: dict[str, Any]) -> None:
    if tc_id in SAME_AS_VALID_357:
        assert test["jws"] == next(t for _, _, t in CASES if t["tcId"] == 357)["jws"]
        expected = True
    else:
        expected = (
            test["result"] == "valid" and tc_id not in MUST_REJECT_DESPITE_LABEL and tc_id not in REFUSED_BY_POLICY
        )
    assert accepts(key, test["jws"]) is expected, test.get("comment")


def test_padded_base64_is_refused() -> None:
    key = next(k for tc, k, _ in CASES if tc == 357)
    head, payload, sig = next(t for tc, _, t in CASES if tc == 357)["jws"].split(".")
    assert accepts(key, f"{head}.{payload}.{sig}")
    for variant in (f"{head}.{payload}==.{sig}", f"{head}=.{payload}.{sig}", f"{head}.{payload}.{sig}="):
        assert not accepts(key, variant), variant
