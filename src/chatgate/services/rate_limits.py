"""Throttles: whether one more attempt may go on, under the named rules.

The counts live behind the ``RateCounter`` port (Redis or the database), so
every process and every instance of the service counts against the same
budget. A hit is counted before the attempt does anything else, in a write of
its own: a refused attempt still counts, and counting touches nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from chatgate.domain.rate_limits import RateRule, window_at
from chatgate.errors import RateLimited
from chatgate.services.ports import RateCounter

# Longer keys (an odd X-Forwarded-For value, say) are stored as their digest: a stored key stays small.
MAX_KEY_LENGTH = 128


class RateLimiter:
    def __init__(
        self,
        rules: Mapping[str, RateRule],
        counter: RateCounter,
        pseudonym_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rules = dict(rules)
        self._counter = counter
        self._pseudonym_key = pseudonym_key
        self._clock = clock

    async def hit(self, rule_name: str, key: str) -> None:
        """Count one attempt; raise RateLimited (with the seconds until the window ends) past the limit."""
        rule = self._rules.get(rule_name)
        if rule is None or rule.limit == 0:
            return
        now = self._clock()
        window = window_at(now, rule)
        if len(key) > MAX_KEY_LENGTH:
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        if await self._counter.hit(rule_name, key, window.start, window.end) > rule.limit:
            raise RateLimited(window.retry_after(now))

    def account_key(self, scope: str, email: str, ip: str) -> str:
        """The ``signin_account`` key of (account, address): the email only as a keyed digest.

        Keyed (HMAC under a key derived from the server key), so a stored key
        cannot be matched against a list of guessed emails; the same on every
        instance that shares the server key.
        """
        pseudonym = hmac.new(self._pseudonym_key, email.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{scope}:{pseudonym}:{ip}"

    async def forget_finished(self) -> int:
        return await self._counter.forget_finished(int(self._clock()))

    async def ping(self) -> None:
        await self._counter.ping()

    async def close(self) -> None:
        await self._counter.close()
