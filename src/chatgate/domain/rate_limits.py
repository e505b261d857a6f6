"""Named rate rules (``signin_ip=60/60``: 60 attempts per 60 seconds) and the
fixed-window arithmetic behind them. Pure: the caller brings the clock."""

from __future__ import annotations

from dataclasses import dataclass

RULE_NAMES = frozenset({"signin_account", "signin_ip", "signup_ip", "anonymous_ip", "message_sender"})


@dataclass(frozen=True)
class RateRule:
    limit: int  # 0 turns the rule off
    window_seconds: int


@dataclass(frozen=True)
class Window:
    """One fixed window of a rule, in whole seconds since the epoch: ``start <= t < end``."""

    start: int
    end: int

    def retry_after(self, now: float) -> int:
        """Seconds to wait before the next window opens (rounded up, at least 1)."""
        return int(self.end - now) + 1


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


def window_at(now: float, rule: RateRule) -> Window:
    """The window of ``rule`` that holds the moment ``now``."""
    start = int(now // rule.window_seconds) * rule.window_seconds
    return Window(start, start + rule.window_seconds)
