"""Server key, project signing secrets (encrypted at rest) and API keys."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SERVER_KEY_FILE = "server-key"
API_KEY_PREFIX = "cgk"


def load_or_create_server_key(data_dir: Path, given: bytes | None) -> bytes:
    """The server's master key: from the environment, else a file made on first start."""
    if given is not None:
        return given
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SERVER_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = bytes.fromhex(path.read_text().strip())
        if len(key) < 32:
            raise ValueError(f"{path} holds a key shorter than 32 bytes") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


@dataclass(frozen=True)
class ServerKeys:
    session_signing: bytes
    secret_encryption: bytes
    # Turns the emails in rate-limit keys into pseudonyms, the same on every instance.
    rate_limit_pseudonyms: bytes
    # Names this deployment's keys in a Redis that others may share.
    redis_namespace: str

    @classmethod
    def from_master(cls, master: bytes) -> ServerKeys:
        return cls(
            session_signing=_derive(master, b"chatgate session tokens v1"),
            secret_encryption=_derive(master, b"chatgate project secrets v1"),
            rate_limit_pseudonyms=_derive(master, b"chatgate rate-limit pseudonyms v1"),
            redis_namespace=_derive(master, b"chatgate redis namespace v1")[:6].hex(),
        )


class SecretBox:
    """AES-256-GCM for project signing secrets; the project id is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, project_id: str, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), project_id.encode())

    def open(self, project_id: str, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:12], sealed[12:], project_id.encode()).decode()


def new_signing_secret() -> str:
    """256 random bits as a URL-safe string; customers use the string itself as the HMAC key."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewApiKey:
    prefix: str
    key: str
    key_hash: str


def new_api_key() -> NewApiKey:
    """``cgk_<prefix>_<secret>``: the prefix finds the row, the secret (256 bits) proves it."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(prefix, key, hash_api_key(key))


def hash_api_key(key: str) -> str:
    # A fast hash suffices: the key carries 256 random bits, nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
