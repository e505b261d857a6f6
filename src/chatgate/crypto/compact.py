"""A strict reader for JWS compact serialization, run before any JOSE library.

It refuses what libraries have historically let through: padding and the
standard-alphabet characters in base64url, non-canonical trailing bits,
duplicate JSON member names, NaN/Infinity, deep nesting, non-UTF-8 text,
unknown ``crit`` and key-carrying headers. It never verifies anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from chatgate.errors import TokenRejected

MAX_TOKEN_BYTES = 8 * 1024
MAX_JSON_DEPTH = 8
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")
# Headers that would let a token bring or point to its own key: never followed.
KEY_CARRYING_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
UNDERSTOOD_CRIT: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CompactJws:
    header: dict[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXBITS = {c: i for i, c in enumerate(_ALPHABET)}
# Bits of the last character that encode nothing, by segment length mod 4.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url, or raise ``TokenRejected('malformed')``."""
    remainder = len(segment) % 4
    if remainder == 1 or not _SEGMENT.match(segment):
        raise TokenRejected("malformed", "The token is not canonical base64url.")
    # Unused trailing bits must be zero, else two strings decode to the same bytes.
    if segment and _SIXBITS[segment[-1]] & _UNUSED_BITS[remainder]:
        raise TokenRejected("malformed", "The token is not canonical base64url.")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenRejected("malformed", "The token is not canonical base64url.") from exc


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise TokenRejected("malformed", f"The token repeats the member {key!r}.")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise TokenRejected("malformed", f"The token contains {name}, which JSON does not allow.")


def _bounded_int(text: str) -> int:
    # Claims are answered back (metadata) and stored as JSON: keep them within 64 bits.
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise TokenRejected("malformed", "The token contains a number out of range.")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise TokenRejected("malformed", "The token contains a number out of range.")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """A ``\\ud800`` escape without its pair decodes to text no database can store."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float, parse_int=_bounded_int
)


def strict_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object, refusing every ambiguity."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenRejected("malformed", f"The token {what} is not UTF-8.") from exc
    # NUL cannot be stored (PostgreSQL text), and no honest claim carries one.
    if "\\u0000" in text:
        raise TokenRejected("malformed", f"The token {what} contains a NUL character.")
    # Cheap bound before parsing: nesting needs brackets.
    brackets = text.count("[") + text.count("{")
    if brackets > 256:
        raise TokenRejected("malformed", f"The token {what} is nested too deeply.")
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise TokenRejected("malformed", f"The token {what} is not JSON.") from exc
    if not isinstance(value, dict):
        raise TokenRejected("malformed", f"The token {what} must be a JSON object.")
    # Depth cannot pass the number of brackets; count levels only when it could.
    if brackets > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise TokenRejected("malformed", f"The token {what} is nested too deeply.")
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(value):
        raise TokenRejected("malformed", f"The token {what} contains an unpaired surrogate.")
    return value


def parse_compact(token: str) -> CompactJws:
    """Split and check a compact JWS. The payload is returned as bytes, unread."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected("too_large", f"Tokens are limited to {MAX_TOKEN_BYTES} bytes.")
    if not token.isascii():
        raise TokenRejected("malformed", "The token must be ASCII base64url.")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("malformed", "A token has exactly three dot-separated parts.")
    header_b64, payload_b64, signature_b64 = parts
    if not header_b64:
        raise TokenRejected("malformed", "The token header is empty.")
    # An empty signature is read as such: the verifier refuses it for its alg,
    # so `alg: none` answers alg_not_allowed and a stripped signature bad_signature.
    header = strict_json_object(b64url_decode(header_b64), "header")
    payload = b64url_decode(payload_b64)
    signature = b64url_decode(signature_b64)
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRejected("malformed", "The token header must name its alg.")
    if KEY_CARRYING_HEADERS & header.keys():
        raise TokenRejected("unknown_key", "Tokens may not carry or point to their own key.")
    crit = header.get("crit")
    if crit is not None:
        if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
            raise TokenRejected("malformed", "The crit header must be a non-empty list of names.")
        if not set(crit) <= UNDERSTOOD_CRIT:
            raise TokenRejected("malformed", "The token requires an extension Chatgate does not support.")
    if header.get("b64") is not None:
        raise TokenRejected("malformed", "Unencoded payloads are not accepted.")
    return CompactJws(header, payload, signature, f"{header_b64}.{payload_b64}".encode("ascii"))


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload as claims, before any signature check; for routing only."""
    return strict_json_object(parse_compact(token).payload, "payload")
