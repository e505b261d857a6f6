"""Named rate rules (``signin_ip=60/60``: 60 attempts per 60 seconds) and the
fixed-window arithmetic behind them. Pure: the caller brings the clock."""

from __future__ import annotations

from dataclasses import dataclass

RULE_NAMES = frozenset({"signin_account", "signin_ip", "signup_ip", "anonymous_ip"})


@dataclass(frozen=True)
class RateRule:
    limit: int  # 0 turns the rule off
    window_seconds: int


def parse_rate_rules(spec: str) -> dict[str, RateRule]:
    """Parse ``name=limit/seconds`` pairs; later pairs override earlier ones."""
    rules: dict[str, RateRule] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        limit, _, window = value.partition("/")
        name = name.strip()
        if name not in RULE_NAMES or not limit.strip().isdigit() or not window.strip().isdigit():
            raise ValueError(f"bad rate rule {part!r}: expected one of {sorted(RULE_NAMES)}=N/SECONDS")
        rules[name] = RateRule(int(limit), max(1, int(window)))
    return rules


def window_of(now: float, rule: RateRule) -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    window = int(now // rule.window_seconds)
    left = int((window + 1) * rule.window_seconds - now) + 1
    return window, left
