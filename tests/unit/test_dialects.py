"""Dialect rules as pure functions: the precise boundaries of each vendor's rules."""

from __future__ import annotations

import pytest

from chatgate.domain import dialects
from chatgate.domain.models import CreatedVia
from chatgate.errors import TokenRejected

NOW = 1_800_000_000.0
POLICY = dialects.TimePolicy(leeway_seconds=30, require_exp=False)


def reason_of(fn: object, *args: object) -> str:
    with pytest.raises(TokenRejected) as caught:
        fn(*args)  # type: ignore[operator]
    return caught.value.reason


def test_exp_boundary_is_exclusive_with_leeway() -> None:
    dialects.check_times({"exp": NOW - 29}, NOW, POLICY)
    assert reason_of(dialects.check_times, {"exp": NOW - 30}, NOW, POLICY) == "expired"


def test_nbf_and_iat_in_the_future() -> None:
    dialects.check_times({"nbf": NOW + 30, "iat": NOW + 30}, NOW, POLICY)
    assert reason_of(dialects.check_times, {"nbf": NOW + 31}, NOW, POLICY) == "not_yet_valid"
    assert reason_of(dialects.check_times, {"iat": NOW + 31}, NOW, POLICY) == "not_yet_valid"


def test_require_exp() -> None:
    strict = dialects.TimePolicy(30, require_exp=True)
    assert reason_of(dialects.check_times, {}, NOW, strict) == "missing_claim"


def test_typingmind_rules_in_order() -> None:
    claim = dialects.external_auth_code({"user": {"id": 7, "email": "A@B.io", "x": 1}, "id": "ignored"})
    assert (claim.lookup.by, claim.lookup.value) == ("external_id", "7")
    assert claim.new_user is not None
    assert claim.new_user.email == "a@b.io" and claim.new_user.metadata == {"x": 1}
    assert claim.new_user.created_via is CreatedVia.EXTERNAL_AUTH_CODE
    both = dialects.external_auth_code({"id": "42", "email": "a@b.io"})
    assert (both.lookup.by, both.lookup.value, both.new_user) == ("external_id_or_id", "42", None)
    assert dialects.external_auth_code({"email": "a@b.io"}).lookup.by == "email"
    assert reason_of(dialects.external_auth_code, {"user": {}}) == "missing_claim"
    assert reason_of(dialects.external_auth_code, {"id": 1.5}) == "invalid_claim"


def test_tiledesk_rules() -> None:
    claim = dialects.custom_token({"_id": "1", "sub": "userexternal", "aud": "x", "custom": True, "iat": 1})
    assert claim.new_user is not None and claim.new_user.metadata == {"custom": True}
    assert reason_of(dialects.custom_token, {"_id": "1", "sub": "UserExternal"}) == "wrong_subject"
    assert dialects.audiences({"aud": ["a", "b"]}) == ["a", "b"]
    assert reason_of(dialects.audiences, {"aud": []}) == "malformed"


def test_kustomer_rules() -> None:
    claim = dialects.customer_login({"email": "E@x.io", "externalId": "ignored", "iat": NOW}, NOW, 900, 30)
    assert claim.lookup.by == "email"
    assert claim.new_user is not None and claim.new_user.external_id is None
    assert dialects.customer_login({"externalId": "e", "iat": NOW - 930}, NOW, 900, 30).lookup.value == "e"
    assert reason_of(dialects.customer_login, {"externalId": "e", "iat": NOW - 931}, NOW, 900, 30) == "iat_too_old"
    assert reason_of(dialects.customer_login, {"externalId": "e"}, NOW, 900, 30) == "missing_claim"
