"""One Settings object, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatgate.domain.rate_limits import RateRule, parse_rate_rules


class SettingsError(ValueError):
    """The environment names something Chatgate cannot run with."""


DEFAULT_RATE_RULES = "signin_account=10/300,signin_ip=60/60,signup_ip=20/3600,anonymous_ip=60/60,message_sender=60/60"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    public_url: str
    default_project: str | None = None
    redis_url: str | None = None
    server_key: bytes | None = None
    session_ttl_seconds: int = 30 * 24 * 3600
    staff_session_ttl_seconds: int = 7 * 24 * 3600
    max_body_bytes: int = 64 * 1024
    rate_rules: Mapping[str, RateRule] = field(default_factory=dict)
    trusted_proxies: tuple[str, ...] = ()
    db_pool_size: int = 8
    password_hash_concurrency: int = 2
    header_timeout_seconds: int = 10
    keepalive_timeout_seconds: int = 5
    workers: int = 1
    log_level: str = "info"
    migrate_on_start: bool = True
    metrics: bool = False
    metrics_token: str | None = None
    max_conversations_per_user: int = 1000
    ws_ping_seconds: int = 20
    # Webhooks to loopback, private, link-local … addresses and over plain http:// (tests, closed networks).
    webhook_allow_private: bool = False
    webhook_retry_base_seconds: int = 10
    # Staff routes also take HTTP Basic (email:password), as Tiledesk's clients send it. Off by default:
    # the password then travels with every request, and each request is a sign-in attempt (argon2id, throttled).
    staff_basic_auth: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("CHATGATE_DATA_DIR") or Path.cwd() / ".chatgate").resolve()
        database_url = env.get("CHATGATE_DATABASE_URL") or f"sqlite:///{data_dir / 'chatgate.db'}"
        if not database_url.startswith(("sqlite", "postgresql")):
            raise SettingsError("CHATGATE_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        public_url = (env.get("CHATGATE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError("CHATGATE_PUBLIC_URL must start with http:// or https://")
        key_bytes = _server_key(env.get("CHATGATE_SERVER_KEY"))
        try:
            rate_rules = parse_rate_rules(DEFAULT_RATE_RULES + "," + env.get("CHATGATE_RATE_LIMITS", ""))
        except ValueError as exc:
            raise SettingsError(f"CHATGATE_RATE_LIMITS: {exc}") from exc
        log_level = (env.get("CHATGATE_LOG_LEVEL") or "info").lower()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"CHATGATE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            public_url=public_url,
            default_project=env.get("CHATGATE_DEFAULT_PROJECT") or None,
            redis_url=env.get("CHATGATE_REDIS_URL") or None,
            server_key=key_bytes,
            session_ttl_seconds=_int(env, "CHATGATE_SESSION_TTL_SECONDS", 30 * 24 * 3600),
            staff_session_ttl_seconds=_int(env, "CHATGATE_STAFF_SESSION_TTL_SECONDS", 7 * 24 * 3600),
            max_body_bytes=_int(env, "CHATGATE_MAX_BODY_BYTES", 64 * 1024),
            rate_rules=rate_rules,
            trusted_proxies=tuple(p.strip() for p in env.get("CHATGATE_TRUSTED_PROXIES", "").split(",") if p.strip()),
            db_pool_size=_int(env, "CHATGATE_DB_POOL_SIZE", 8),
            password_hash_concurrency=_int(env, "CHATGATE_PASSWORD_HASH_CONCURRENCY", os.cpu_count() or 2),
            header_timeout_seconds=_int(env, "CHATGATE_HEADER_TIMEOUT_SECONDS", 10),
            keepalive_timeout_seconds=_int(env, "CHATGATE_KEEPALIVE_TIMEOUT_SECONDS", 5),
            workers=_int(env, "CHATGATE_WORKERS", 1),
            log_level=log_level,
            migrate_on_start=_bool(env, "CHATGATE_MIGRATE_ON_START", True),
            metrics=_bool(env, "CHATGATE_METRICS", False),
            metrics_token=env.get("CHATGATE_METRICS_TOKEN") or None,
            max_conversations_per_user=_int(env, "CHATGATE_MAX_CONVERSATIONS_PER_USER", 1000),
            ws_ping_seconds=_int(env, "CHATGATE_WS_PING_SECONDS", 20),
            webhook_allow_private=_bool(env, "CHATGATE_WEBHOOK_ALLOW_PRIVATE", False),
            webhook_retry_base_seconds=_int(env, "CHATGATE_WEBHOOK_RETRY_BASE_SECONDS", 10),
            staff_basic_auth=_bool(env, "CHATGATE_STAFF_BASIC_AUTH", True),
        )


def _server_key(raw: str | None) -> bytes | None:
    if not raw:
        return None
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError:
        raise SettingsError("CHATGATE_SERVER_KEY must be hexadecimal (64 or more hex characters)") from None
    if len(key) < 32:
        raise SettingsError("CHATGATE_SERVER_KEY must be at least 32 bytes of hex")
    return key


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be one of 1, true, yes, on or 0, false, no, off, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value
