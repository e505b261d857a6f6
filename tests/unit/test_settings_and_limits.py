"""Project settings rules, rate-limit windows and environment settings."""

from __future__ import annotations

import pytest

from chatgate.domain.project_settings import apply_change, default_settings
from chatgate.domain.rate_limits import parse_rate_rules
from chatgate.errors import RateLimited, ValidationFailed
from chatgate.ratelimit import RateLimiter
from chatgate.settings import Settings, SettingsError


def test_settings_change_is_validated_field_by_field() -> None:
    changed = apply_change(default_settings(), {"seat_limit": 2, "auth_methods": {"anonymous": False}})
    assert changed["seat_limit"] == 2
    assert changed["auth_methods"] == {"anonymous": False, "email": True, "external_jwt": True}
    with pytest.raises(ValidationFailed) as caught:
        apply_change(default_settings(), {"seat_limit": True, "leeway_seconds": -1})
    assert set(caught.value.fields) == {"settings.seat_limit", "settings.leeway_seconds"}


def test_rate_limiter_counts_per_key_and_tells_when_to_retry() -> None:
    clock = [1000.0]
    limiter = RateLimiter(parse_rate_rules("signin_ip=2/60"), clock=lambda: clock[0])
    limiter.hit("signin_ip", "1.2.3.4")
    limiter.hit("signin_ip", "1.2.3.4")
    limiter.hit("signin_ip", "5.6.7.8")
    with pytest.raises(RateLimited) as caught:
        limiter.hit("signin_ip", "1.2.3.4")
    assert 1 <= caught.value.retry_after <= 61
    clock[0] += 60
    limiter.hit("signin_ip", "1.2.3.4")


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(parse_rate_rules("signin_ip=5/60"), max_keys=100)
    for i in range(1000):
        limiter.hit("signin_ip", f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._counts) <= 100


def test_bad_rate_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_rate_rules("signin_moon=1/1")


def test_settings_from_env(tmp_path: object) -> None:
    s = Settings.from_env({"CHATGATE_DATA_DIR": "/tmp/cg-x", "CHATGATE_PUBLIC_URL": "https://chat.example.com/"})
    assert s.public_url == "https://chat.example.com"
    assert s.database_url == "sqlite:////tmp/cg-x/chatgate.db"
    with pytest.raises(SettingsError):
        Settings.from_env({"CHATGATE_DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError):
        Settings.from_env({"CHATGATE_SERVER_KEY": "abcd"})


def test_operating_settings_from_env() -> None:
    defaults = Settings.from_env({"CHATGATE_DATA_DIR": "/tmp/cg-x"})
    assert (defaults.migrate_on_start, defaults.metrics, defaults.metrics_token) == (True, False, None)
    assert (defaults.workers, defaults.log_level) == (1, "info")
    chosen = Settings.from_env(
        {
            "CHATGATE_MIGRATE_ON_START": "off",
            "CHATGATE_METRICS": "Yes",
            "CHATGATE_METRICS_TOKEN": "t0k3n",
            "CHATGATE_WORKERS": "4",
            "CHATGATE_LOG_LEVEL": "WARNING",
        }
    )
    assert (chosen.migrate_on_start, chosen.metrics, chosen.metrics_token) == (False, True, "t0k3n")
    assert (chosen.workers, chosen.log_level) == (4, "warning")
    for name, value in (("CHATGATE_METRICS", "sometimes"), ("CHATGATE_WORKERS", "0"), ("CHATGATE_LOG_LEVEL", "loud")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})
