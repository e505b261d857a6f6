"""The three token dialects Chatgate speaks, as pure rules over verified claims.

* TypingMind ``externalAuthCode`` (contract §4.3)
* Tiledesk custom token (contract §4.2)
* Kustomer customer login (contract §4.4)

Each turns claims into a ``LoginClaim``: how to find the user and, when the
dialect may create one, what to create. Time rules shared by all live in
``check_times``. Everything raises ``TokenRejected`` with a §6 reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chatgate.domain.identity import (
    MAX_EXTERNAL_ID_LENGTH,
    MAX_NAME_LENGTH,
    Lookup,
    external_id_from,
    normalize_email,
)
from chatgate.domain.models import CreatedVia, NewEndUser
from chatgate.errors import TokenRejected

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
TILEDESK_SUBJECT = "userexternal"
# Tiledesk's documents have customers sign aud = this prefix + their project id: accepted for a project's own id.
TILEDESK_AUDIENCE_PREFIX = "https://tiledesk.com/projects/"
# What a TypingMind user object gives Chatgate's own fields, and so never keeps in metadata.
TYPINGMIND_READ = frozenset({"id", "email", "firstname", "first_name", "lastname", "last_name"})
MAX_JTI_LENGTH = 256
MAX_TIME = 2**53


@dataclass(frozen=True)
class LoginClaim:
    lookup: Lookup
    new_user: NewEndUser | None  # None: the user must already exist
    jti: str | None = None
    expires_at: float | None = None
    # Signed by the project: its email is verified and outranks one a user only typed.
    vouched: bool = False
    # Kustomer, both email and externalId: the email identifies, and the externalId is given to that user
    # if it has none and no other user of the project holds it.
    attach_external_id: str | None = None


@dataclass(frozen=True)
class TimePolicy:
    leeway_seconds: int
    require_exp: bool


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise TokenRejected("malformed", f"The {name} claim must be a number.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("malformed", f"The {name} claim must be a number.")
    # Beyond what a float holds exactly, a time is nonsense (and 10**400 cannot even become one).
    if not -MAX_TIME <= value <= MAX_TIME:
        raise TokenRejected("malformed", f"The {name} claim is out of range.")
    return float(value)


def check_times(claims: Mapping[str, Any], now: float, policy: TimePolicy) -> None:
    """``exp``, ``nbf`` and ``iat`` against the clock, with the project's leeway."""
    leeway = policy.leeway_seconds
    exp = _number(claims, "exp")
    nbf = _number(claims, "nbf")
    iat = _number(claims, "iat")
    if exp is None and policy.require_exp:
        raise TokenRejected("missing_claim", "The token must carry an exp claim.")
    if exp is not None and now >= exp + leeway:
        raise TokenRejected("expired", "The token has expired.")
    if nbf is not None and now + leeway < nbf:
        raise TokenRejected("not_yet_valid", "The token is not valid yet (nbf).")
    if iat is not None and now + leeway < iat:
        raise TokenRejected("not_yet_valid", "The token was issued in the future (iat).")


def read_jti(claims: Mapping[str, Any]) -> str | None:
    jti = claims.get("jti")
    if jti is None:
        return None
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise TokenRejected("malformed", "The jti claim must be a short string.")
    return jti


def _email(value: Any) -> str | None:
    if value is None:
        return None
    email = normalize_email(value) if isinstance(value, str) else None
    if email is None:
        raise TokenRejected("invalid_claim", "The email claim is not a valid email address.")
    return email


def _name(value: Any, claim: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise TokenRejected("malformed", f"The {claim} claim must be a string of at most {MAX_NAME_LENGTH} characters.")
    return value.strip() or None


def _id(value: Any, claim: str) -> str:
    if value is None:
        raise TokenRejected("missing_claim", f"The token must carry {claim}.")
    external_id = external_id_from(value)
    if external_id is None:
        raise TokenRejected(
            "invalid_claim",
            f"{claim} must be a non-empty string or a whole number of at most {MAX_EXTERNAL_ID_LENGTH} characters,"
            " without control or bidirectional characters.",
        )
    return external_id


def _finish(claims: Mapping[str, Any], lookup: Lookup, new_user: NewEndUser | None) -> LoginClaim:
    """A login the project's signed token vouches for: any email it carries is verified."""
    if new_user is not None and new_user.email is not None:
        new_user = replace(new_user, email_verified=True)
    return LoginClaim(lookup, new_user, read_jti(claims), _number(claims, "exp"), vouched=True)


def external_auth_code(claims: Mapping[str, Any]) -> LoginClaim:
    """TypingMind: ``user{id,…}`` creates; else ``id``, else ``email`` finds (id wins)."""
    user = claims.get("user")
    if user is not None:
        if not isinstance(user, Mapping):
            raise TokenRejected("malformed", "The user claim must be an object.")
        external_id = _id(user.get("id"), "user.id")
        metadata = {k: v for k, v in user.items() if k not in TYPINGMIND_READ}
        profile = NewEndUser(
            created_via=CreatedVia.EXTERNAL_AUTH_CODE,
            external_id=external_id,
            email=_email(user.get("email")),
            firstname=_name(user.get("firstname", user.get("first_name")), "user.firstname"),
            lastname=_name(user.get("lastname", user.get("last_name")), "user.lastname"),
            metadata=metadata,
        )
        return _finish(claims, Lookup("external_id", external_id), profile)
    if claims.get("id") is not None:
        return _finish(claims, Lookup("external_id_or_id", _id(claims["id"], "id")), None)
    if claims.get("email") is not None:
        email = _email(claims["email"])
        assert email is not None
        return _finish(claims, Lookup("email", email), None)
    raise TokenRejected("missing_claim", "The code must carry user.id, id or email.")


def audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if aud is None:
        raise TokenRejected("missing_claim", "The token must carry aud.")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise TokenRejected("malformed", "The aud claim must be a string or a list of strings.")
    return values


def tiledesk_project_id(aud: str) -> str | None:
    """The project id in ``https://tiledesk.com/projects/<id>``, as Tiledesk's documents write the audience."""
    return aud[len(TILEDESK_AUDIENCE_PREFIX) :] if aud.startswith(TILEDESK_AUDIENCE_PREFIX) else None


def custom_token(claims: Mapping[str, Any]) -> LoginClaim:
    """Tiledesk: ``_id`` is the user's external id; ``sub`` must be ``userexternal``."""
    sub = claims.get("sub")
    if sub is None:
        raise TokenRejected("missing_claim", "The token must carry sub.")
    if sub != TILEDESK_SUBJECT:
        raise TokenRejected("wrong_subject", f"sub must be {TILEDESK_SUBJECT!r}.")
    external_id = _id(claims.get("_id"), "_id")
    known = REGISTERED_CLAIMS | {"_id", "firstname", "lastname", "email"}
    profile = NewEndUser(
        created_via=CreatedVia.CUSTOM_TOKEN,
        external_id=external_id,
        email=_email(claims.get("email")),
        firstname=_name(claims.get("firstname"), "firstname"),
        lastname=_name(claims.get("lastname"), "lastname"),
        metadata={k: v for k, v in claims.items() if k not in known},
    )
    return _finish(claims, Lookup("external_id", external_id), profile)


def customer_login(claims: Mapping[str, Any], now: float, max_age_seconds: int, leeway_seconds: int) -> LoginClaim:
    """Kustomer: a fresh ``iat`` is required; ``email`` alone identifies when present."""
    iat = _number(claims, "iat")
    if iat is None:
        raise TokenRejected("missing_claim", "The token must carry iat.")
    if now - iat > max_age_seconds + leeway_seconds:
        raise TokenRejected("iat_too_old", f"iat must be within {max_age_seconds} seconds of now.")
    known = REGISTERED_CLAIMS | {"externalId", "email", "firstname", "lastname"}
    profile = NewEndUser(
        created_via=CreatedVia.CUSTOMER_LOGIN,
        firstname=_name(claims.get("firstname"), "firstname"),
        lastname=_name(claims.get("lastname"), "lastname"),
        metadata={k: v for k, v in claims.items() if k not in known},
    )
    email = _email(claims.get("email"))
    if email is not None:
        # An externalId that is not a valid identifier is not attached; the email still signs in.
        attach = external_id_from(claims.get("externalId"))
        found = _finish(claims, Lookup("email", email), replace(profile, email=email))
        return replace(found, attach_external_id=attach)
    if claims.get("externalId") is not None:
        external_id = _id(claims["externalId"], "externalId")
        return _finish(claims, Lookup("external_id", external_id), replace(profile, external_id=external_id))
    raise TokenRejected("missing_claim", "The token must carry email or externalId.")
