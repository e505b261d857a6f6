"""What a login changes on the user it finds: ``Unchanged`` describes exactly the users the rules leave alone.

Storage records a returning login at once only for a user ``Unchanged`` holds
for; were it to hold for a user some rule would change (an email to take, an
externalId to give, a name to update), that change would be skipped.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from chatgate.domain.dialects import LoginClaim
from chatgate.domain.identity import Lookup
from chatgate.domain.login_effects import (
    gives_external_id,
    profile_updates,
    seen_is_due,
    takes_typed_email,
    unchanged_by,
)
from chatgate.domain.models import CreatedVia, EndUser, NewEndUser

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def user(*, verified: bool, external_id: str | None, firstname: str | None, metadata: dict[str, object]) -> EndUser:
    return EndUser(
        id="u" * 24,
        project_id="p" * 24,
        external_id=external_id,
        email="ada@example.com",
        firstname=firstname,
        lastname="King",
        anonymous=False,
        created_via=CreatedVia.CUSTOMER_LOGIN,
        metadata=metadata,
        created_at=NOW,
        last_seen_at=NOW,
        email_verified=verified,
    )


def claims() -> list[LoginClaim]:
    found = []
    for by, vouched, attach, firstname, metadata in itertools.product(
        ("email", "external_id"),
        (True, False),
        (None, "k-1"),
        (None, "", "Ada", "Grace"),
        ({}, {"plan": "pro"}, {"trial": True}),
    ):
        profile = NewEndUser(CreatedVia.CUSTOMER_LOGIN, firstname=firstname, metadata=metadata)
        value = "ada@example.com" if by == "email" else "k-1"
        found.append(LoginClaim(Lookup(by, value), profile, vouched=vouched, attach_external_id=attach))  # type: ignore[arg-type]
    found.append(LoginClaim(Lookup("email", "ada@example.com"), None, vouched=True))
    return found


def users() -> list[EndUser]:
    return [
        user(verified=verified, external_id=external_id, firstname=firstname, metadata=metadata)
        for verified, external_id, firstname, metadata in itertools.product(
            (True, False), (None, "k-1"), (None, "Ada"), ({}, {"plan": "pro"}, {"plan": "free"}, {"trial": 1})
        )
    ]


def test_unchanged_holds_exactly_when_no_rule_changes_the_user() -> None:
    cases = 0
    for claim in claims():
        unchanged = unchanged_by(claim)
        for found in users():
            left_alone = (
                not takes_typed_email(claim, found)
                and not gives_external_id(claim, found)
                and not profile_updates(found, claim.new_user)
            )
            assert unchanged.holds_for(found) == left_alone, (claim, found)
            cases += 1
    assert cases > 500


def test_an_empty_name_or_metadata_keeps_the_stored_one() -> None:
    stored = user(verified=True, external_id="k-1", firstname="Ada", metadata={"plan": "pro"})
    profile = NewEndUser(CreatedVia.EXTERNAL_AUTH_CODE, firstname="", lastname=None, metadata={})
    assert profile_updates(stored, profile) == {}
    renamed = NewEndUser(CreatedVia.EXTERNAL_AUTH_CODE, firstname="Grace", metadata={"plan": "pro"})
    assert profile_updates(stored, renamed) == {"firstname": "Grace"}


def test_json_values_python_holds_equal_are_changes() -> None:
    stored = user(verified=True, external_id="k-1", firstname=None, metadata={"trial": 1, "tags": [0, "a"]})
    for given in (
        {"trial": True, "tags": [0, "a"]},
        {"trial": 1.0, "tags": [0, "a"]},
        {"trial": 1, "tags": [False, "a"]},
    ):
        profile = NewEndUser(CreatedVia.EXTERNAL_AUTH_CODE, metadata=given)
        assert profile_updates(stored, profile) == {"metadata": given}
    same = NewEndUser(
        CreatedVia.EXTERNAL_AUTH_CODE, metadata={"tags": [0, "a"], "trial": 1}
    )  # key order is not a change
    assert profile_updates(stored, same) == {}


def test_last_seen_is_kept_to_the_minute() -> None:
    seen = user(verified=True, external_id=None, firstname=None, metadata={})
    assert not seen_is_due(seen, NOW + timedelta(seconds=59.9))
    assert seen_is_due(seen, NOW + timedelta(seconds=60))
    never = EndUser(**{**seen.__dict__, "last_seen_at": None})
    assert seen_is_due(never, NOW)
