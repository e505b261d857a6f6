"""Project settings rules, rate rules and environment settings."""

from __future__ import annotations

import pytest

from chatgate.domain.project_settings import apply_change, default_settings
from chatgate.domain.rate_limits import parse_rate_rules
from chatgate.errors import ValidationFailed
from chatgate.settings import Settings, SettingsError


def test_settings_change_is_validated_field_by_field() -> None:
    changed = apply_change(default_settings(), {"seat_limit": 2, "auth_methods": {"anonymous": False}})
    assert changed["seat_limit"] == 2
    assert changed["auth_methods"] == {"anonymous": False, "email": True, "external_jwt": True}
    with pytest.raises(ValidationFailed) as caught:
        apply_change(default_settings(), {"seat_limit": True, "leeway_seconds": -1})
    assert set(caught.value.fields) == {"settings.seat_limit", "settings.leeway_seconds"}


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
