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
