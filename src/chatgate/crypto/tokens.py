"""The only module that imports the JOSE library (joserfc).

A ``VerificationKey`` pins exactly one algorithm; the token's header can only
agree with it, never choose. Signatures are checked over bytes the strict
pre-parser (``compact.py``) has already vetted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry

from chatgate.crypto.compact import CompactJws, b64url_encode, parse_compact, strict_json_object
from chatgate.errors import TokenRejected

_HMAC = {"HS256", "HS384", "HS512"}
_RSA = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
SUPPORTED_ALGORITHMS = frozenset(_HMAC | _RSA | set(_EC_CURVES))
MIN_HMAC_KEY_BYTES = 32

JoseKey = OctKey | RSAKey | ECKey


class KeyError_(ValueError):
    """A key that cannot be used for verification (wrong type, use or algorithm)."""


@dataclass(frozen=True)
class VerificationKey:
    alg: str
    key: JoseKey

    @classmethod
    def hmac(cls, secret: bytes, alg: str = "HS256") -> VerificationKey:
        if alg not in _HMAC:
            raise KeyError_(f"{alg} is not an HMAC algorithm")
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise KeyError_(f"HMAC secrets must be at least {MIN_HMAC_KEY_BYTES} bytes")
        return cls(alg, OctKey.import_key(secret))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> VerificationKey:
        """A key as a JWK, which must name its one ``alg`` and be meant for signatures."""
        alg = jwk.get("alg")
        if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
            raise KeyError_("the key must name one supported alg")
        if jwk.get("use", "sig") != "sig":
            raise KeyError_("the key is not meant for signatures")
        key_ops = jwk.get("key_ops")
        if key_ops is not None and "verify" not in key_ops:
            raise KeyError_("the key may not verify")
        kty = jwk.get("kty")
        try:
            if alg in _HMAC and kty == "oct":
                oct_key = OctKey.import_key(dict(jwk))
                if len(oct_key.raw_value) < MIN_HMAC_KEY_BYTES:
                    raise KeyError_(f"HMAC secrets must be at least {MIN_HMAC_KEY_BYTES} bytes")
                key: JoseKey = oct_key
            elif alg in _RSA and kty == "RSA":
                public = {k: jwk[k] for k in ("kty", "n", "e")}
                key = RSAKey.import_key(public)
            elif alg in _EC_CURVES and kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]:
                public = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
                key = ECKey.import_key(public)
            else:
                raise KeyError_(f"a {kty} key cannot verify {alg}")
        except (JoseError, KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, KeyError_):
                raise
            raise KeyError_(f"the key cannot be read: {exc}") from exc
        return cls(alg, key)


def verify_signature(jws: CompactJws, key: VerificationKey) -> None:
    """Refuse unless the header's alg is the key's and the signature matches."""
    if jws.alg != key.alg:
        raise TokenRejected("alg_not_allowed", f"This project's tokens must use {key.alg}.")
    algorithm = JWSRegistry.algorithms[key.alg]
    try:
        valid = algorithm.verify(jws.signing_input, jws.signature, key.key)
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise TokenRejected("bad_signature", "The token's signature does not match.")


def verify(token: str, key: VerificationKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token whose signature ``key`` accepts. No time rules."""
    jws = parse_compact(token)
    verify_signature(jws, key)
    return jws.header, strict_json_object(jws.payload, "payload")


def sign(claims: Mapping[str, Any], key: VerificationKey, typ: str = "JWT") -> str:
    """A compact JWS over ``claims`` with an HMAC key (Chatgate's own session tokens)."""
    header = b64url_encode(orjson.dumps({"alg": key.alg, "typ": typ}))
    payload = b64url_encode(orjson.dumps(dict(claims)))
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = JWSRegistry.algorithms[key.alg].sign(signing_input, key.key)
    return f"{header}.{payload}.{b64url_encode(signature)}"


SESSION_TYP = "chatgate-session+jwt"


class SessionTokenCodec:
    """Chatgate's own session tokens: HS256 under a server-held key, with an explicit typ."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._key = VerificationKey.hmac(secret)

    def issue(self, claims: Mapping[str, Any]) -> str:
        return sign(claims, self._key, typ=SESSION_TYP)

    def read(self, token: str, now: float | None = None) -> dict[str, Any]:
        jws = parse_compact(token)
        if jws.header.get("typ") != SESSION_TYP:
            raise TokenRejected("malformed", "This is not a Chatgate session token.")
        verify_signature(jws, self._key)
        claims = strict_json_object(jws.payload, "payload")
        exp = claims.get("exp")
        if not isinstance(exp, int) or (now if now is not None else time.time()) >= exp:
            raise TokenRejected("expired", "The session has expired.")
        return claims
