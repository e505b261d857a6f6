"""Token builders for tests: PyJWT for honest tokens, raw segments for forged ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret: str, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """An honest token, minted by PyJWT."""
    return pyjwt.encode(claims, secret, algorithm="HS256", headers=headers)


def raw_token(header: str | dict[str, Any], payload: bytes | str | dict[str, Any], secret: str | bytes | None) -> str:
    """A token built by hand, so it can be anything an attacker can write.

    ``header``/``payload`` given as strings are used byte for byte (duplicate
    members, NaN …). ``secret=None`` leaves the signature empty.
    """
    header_text = header if isinstance(header, str) else json.dumps(header)
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    payload_bytes = payload.encode() if isinstance(payload, str) else payload
    signing_input = f"{b64(header_text.encode())}.{b64(payload_bytes)}"
    if secret is None:
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def now() -> int:
    return int(time.time())
