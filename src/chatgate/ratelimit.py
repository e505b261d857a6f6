"""Named rate limiters (``signin_ip``, ``signin_account`` …) kept in process memory.

Fixed windows per (rule, key). Memory is bounded: when the table grows past
``max_keys`` the finished windows are dropped, and if that is not enough the
oldest entries go. Each server process limits on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from chatgate.domain.rate_limits import RateRule, window_of
from chatgate.errors import RateLimited


class RateLimiter:
    def __init__(
        self,
        rules: Mapping[str, RateRule],
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
    ) -> None:
        self._rules = dict(rules)
        self._clock = clock
        self._max_keys = max_keys
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, rule_name: str, key: str) -> None:
        """Count one attempt; raise RateLimited once the rule's limit is passed."""
        rule = self._rules.get(rule_name)
        if rule is None or rule.limit == 0:
            return
        now = self._clock()
        window, seconds_left = window_of(now, rule)
        with self._lock:
            seen_window, count = self._counts.get((rule_name, key), (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[(rule_name, key)] = (window, count)
            if len(self._counts) > self._max_keys:
                self._shrink(now)
        if count > rule.limit:
            raise RateLimited(seconds_left)

    def _shrink(self, now: float) -> None:
        for (name, key), (window, _) in list(self._counts.items()):
            if window != window_of(now, self._rules[name])[0]:
                del self._counts[(name, key)]
        while len(self._counts) > self._max_keys // 2:
            del self._counts[next(iter(self._counts))]
