"""Reading requests: JSON (or form) bodies into schemas, credentials out of headers, the caller's address."""

from __future__ import annotations

import base64
import binascii
import json as stdlib_json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from chatgate.domain.identity import normalize_email
from chatgate.errors import MalformedJson, NotAuthenticated, ValidationFailed
from chatgate.services.bundle import Services
from chatgate.services.context import Caller

M = TypeVar("M", bound=BaseModel)

SESSION_SCHEMES = ("jwt", "bearer")


# Deep enough for any honest body (settings are two levels), shallow enough to walk safely.
MAX_JSON_DEPTH = 32


FORM_TYPE = "application/x-www-form-urlencoded"
# More fields than any form of ours has, few enough to read at once.
MAX_FORM_FIELDS = 32


async def parse_body(request: Request, model: type[M], *, forms: bool = False) -> M:
    """The body read into ``model``; a field problem is a 422 naming each field.

    An empty body (or only whitespace) is an empty object, so its required
    fields are named as missing; a body that is present but not a JSON object
    stays a 400. With ``forms`` (the Tiledesk sign-in routes, whose clients
    may post HTML forms), an ``application/x-www-form-urlencoded`` body is read
    as its fields, unless it starts with ``{`` (curl's ``-d '{…}'`` sends JSON
    under that type).
    """
    raw = await request.body()
    if not raw.strip():
        data: Any = {}
    elif forms and _is_form(request) and not raw.lstrip().startswith(b"{"):
        data = _form_fields(raw)
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = _json_with_unstorable_text(raw)
    if not isinstance(data, dict):
        raise MalformedJson()
    if _too_deep(data):
        raise MalformedJson(f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.")
    unstorable = _unstorable_path(data)
    if unstorable is not None:
        raise ValidationFailed({unstorable: "must not contain NUL characters or unpaired surrogates"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_fields(exc)) from exc


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower() == FORM_TYPE


def _form_fields(raw: bytes) -> dict[str, str]:
    """``a=1&b=2`` as ``{"a": "1", "b": "2"}``: UTF-8 after percent-decoding, each field once."""
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedJson("The request body is neither a JSON object nor a URL-encoded form.") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise ValidationFailed({name: "must be given once"})
        fields[name] = value
    return fields


def _too_deep(value: Any) -> bool:
    """Nesting past MAX_JSON_DEPTH, found without recursion (orjson accepts 1,024 levels)."""
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _json_with_unstorable_text(raw: bytes) -> Any:
    """orjson refuses unpaired surrogate escapes ("\\ud800"), which are valid JSON: read those
    with the standard parser, so the field can be named in a 422. Anything else is not JSON."""
    if b"\\u" not in raw:
        raise MalformedJson()
    try:
        return stdlib_json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson() from exc


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unstorable(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable_path(value: Any, path: str = "") -> str | None:
    """Where text no database can store (NUL, unpaired surrogates) hides in a JSON value, if anywhere."""
    if isinstance(value, str):
        return (path or "body") if _unstorable(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _unstorable(key):
            return path or "body"
        found = _unstorable_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def query_int(request: Request, name: str, low: int, high: int, default: int) -> int:
    """A query parameter that must be an ASCII whole number within bounds, else 422."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # isdigit() alone admits "²" and "①", which int() then refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(high))) or not low <= int(raw) <= high:
        raise ValidationFailed({name: f"must be a whole number from {low} to {high}"})
    return int(raw)


def _fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        fields.setdefault(name, message)
    return fields


def authorization_token(
    request: Request, schemes: tuple[str, ...] = SESSION_SCHEMES, *, bare: bool = False
) -> str | None:
    """The token of ``Authorization: JWT <t>`` or ``Bearer <t>`` (scheme case-insensitive).

    With ``bare``, a header that is one word is taken as the token itself
    (Tiledesk's custom-token clients send it that way too).
    """
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if bare and not token:
        return scheme
    if scheme.lower() not in schemes or not token.strip():
        return None
    return token.strip()


def require_token(request: Request) -> str:
    token = authorization_token(request)
    if token is None:
        if _scheme(request) == "basic":
            raise NotAuthenticated("This route takes a session token, not HTTP Basic credentials.")
        raise NotAuthenticated()
    return token


def caller_of(request: Request) -> Caller:
    return Caller(request.client.host if request.client else "unknown")


async def session_caller(services: Services, request: Request, *, basic: bool = True) -> Caller:
    """The caller, proven by the request's session token (401 when it is missing, expired or signed out).

    Or, where ``basic`` (every staff route but logout), by HTTP Basic
    credentials of a staff account, checked as a sign-in is, when the
    deployment allows it (``CHATGATE_STAFF_BASIC_AUTH``). Basic never
    proves an end user.
    """
    if basic and _scheme(request) == "basic":
        email, password = _basic_credentials(request)
        principal = await services.staff.authenticate_basic(email, password, caller_of(request))
        return Caller(caller_of(request).ip, principal)
    principal = await services.sessions.authenticate(require_token(request))
    return Caller(caller_of(request).ip, principal)


def _scheme(request: Request) -> str:
    return request.headers.get("authorization", "").strip().partition(" ")[0].lower()


# As the sign-in route takes it (schemas.SignIn): longer passwords are never checked.
MAX_PASSWORD_LENGTH = 1024


def _basic_credentials(request: Request) -> tuple[str, str]:
    """``Authorization: Basic base64(email:password)`` (RFC 7617, UTF-8), the email in its sign-in form.

    A browser's request (one carrying ``Origin``) is refused: Basic is for
    servers and scripts, and credentials a browser keeps for a site would
    otherwise go along with another site's forged requests.
    """
    if "origin" in request.headers:
        raise NotAuthenticated(
            "HTTP Basic credentials are not accepted from a browser (the request carries Origin):"
            " sign in and send the session token."
        )
    encoded = request.headers.get("authorization", "").strip().partition(" ")[2].strip()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise NotAuthenticated("The Basic credentials are not base64 of email:password.") from exc
    email, colon, password = decoded.partition(":")
    if not colon or not email.strip() or not password or len(password) > MAX_PASSWORD_LENGTH:
        raise NotAuthenticated("The Basic credentials are not base64 of email:password.")
    return normalize_email(email) or email.strip().lower(), password


# API answers carry tokens, secrets, keys and users: no cache may keep them.
API_HEADERS = {"Cache-Control": "no-store"}


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=API_HEADERS)


Handler = Callable[[Request], Awaitable[Response]]
