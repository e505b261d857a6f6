"""Project settings: defaults, and the rules a change must follow (contract §2)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from chatgate.errors import ValidationFailed

AUTH_METHODS = ("anonymous", "email", "external_jwt")
MAX_AUDIENCES = 20
MAX_AUDIENCE_LENGTH = 512
MAX_ORIGINS = 50
# scheme://host[:port], nothing after: what a browser sends as Origin.
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:[0-9]{1,5})?$")

DEFAULTS: dict[str, Any] = {
    "seat_limit": None,
    "auth_methods": {"anonymous": True, "email": True, "external_jwt": True},
    "require_exp": False,
    "max_token_age_seconds": 900,
    "leeway_seconds": 30,
    "accepted_audiences": [],
    # Empty: any site may frame the chat page and host the widget (documented risk: clickjacking).
    "allowed_origins": [],
}


def default_settings() -> dict[str, Any]:
    return copy.deepcopy(DEFAULTS)


def with_defaults(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored settings completed by today's defaults (new settings appear on old projects)."""
    merged = {key: stored.get(key, default) for key, default in DEFAULTS.items()}
    auth_methods = stored.get("auth_methods")
    merged["auth_methods"] = {**DEFAULTS["auth_methods"], **(auth_methods if isinstance(auth_methods, Mapping) else {})}
    merged["accepted_audiences"] = list(merged["accepted_audiences"])
    merged["allowed_origins"] = list(merged["allowed_origins"])
    return merged


def apply_change(current: Mapping[str, Any], change: Any) -> dict[str, Any]:
    """Return ``current`` with ``change`` applied, or raise ValidationFailed naming each bad field.

    ``auth_methods`` merges key by key; every other setting is replaced whole.
    """
    if not isinstance(change, Mapping):
        raise ValidationFailed({"settings": "must be an object"})
    result = with_defaults(current)
    errors: dict[str, str] = {}
    for key, value in change.items():
        check = _CHECKS.get(key)
        if check is None:
            errors[f"settings.{key}"] = "is not a known setting"
            continue
        problem = check(value)
        if problem:
            errors[f"settings.{key}"] = problem
        elif key == "auth_methods":
            result["auth_methods"].update(value)
        elif key == "accepted_audiences":
            result[key] = list(dict.fromkeys(value))
        elif key == "allowed_origins":
            result[key] = list(dict.fromkeys(_origin_as_sent(origin) for origin in value))
        else:
            result[key] = value
    if errors:
        raise ValidationFailed(errors)
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seat_limit(value: Any) -> str | None:
    if value is None or (_is_int(value) and 0 <= value <= 10_000_000):
        return None
    return "must be null or a whole number from 0"


def _auth_methods(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object of booleans"
    for name, enabled in value.items():
        if name not in AUTH_METHODS:
            return f"unknown method {name!r}; known: {', '.join(AUTH_METHODS)}"
        if not isinstance(enabled, bool):
            return f"{name} must be true or false"
    return None


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _bounded_int(low: int, high: int) -> Any:
    def check(value: Any) -> str | None:
        if _is_int(value) and low <= value <= high:
            return None
        return f"must be a whole number from {low} to {high}"

    return check


def _audiences(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_AUDIENCES:
        return f"must be a list of at most {MAX_AUDIENCES} strings"
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_AUDIENCE_LENGTH:
            return f"each audience must be a non-empty string of at most {MAX_AUDIENCE_LENGTH} characters"
        if item != item.strip():
            return "audiences must not start or end with spaces"
    return None


def _origin_as_sent(origin: str) -> str:
    """Lowercased and without its scheme's default port: what a browser puts in ``Origin``."""
    origin = origin.lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def _origins(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_ORIGINS:
        return f"must be a list of at most {MAX_ORIGINS} origins"
    for item in value:
        match = _ORIGIN.match(item.lower()) if isinstance(item, str) else None
        if match is None or int((match.group(3) or ":0")[1:]) > 65535:
            return "each origin must be scheme://host[:port] with http or https and nothing after, e.g. https://example.com"
    return None


_CHECKS = {
    "seat_limit": _seat_limit,
    "auth_methods": _auth_methods,
    "require_exp": _bool,
    "max_token_age_seconds": _bounded_int(1, 7 * 24 * 3600),
    "leeway_seconds": _bounded_int(0, 600),
    "accepted_audiences": _audiences,
    "allowed_origins": _origins,
}
