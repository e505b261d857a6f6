"""What the sign-in service reports to metrics: a port, so no service imports a metrics library.

The service calls it where it audits a sign-in: after a login's commit, and
where a refusal is written to the audit log with its reason. ``method`` is
the audit's label for the way in (``external_auth_code``, ``customer_login``,
``custom_token``, ``anonymous``, ``email``, ``email_signup``); ``reason`` is
the refusal's stable reason (``bad_signature``, ``expired``, ``replayed``…)
or error code (``seat_limit_reached``, ``invalid_credentials``…).
"""

from __future__ import annotations

from typing import Protocol


class SignInMetrics(Protocol):
    def signed_in(self, method: str) -> None: ...
    def refused(self, method: str, reason: str) -> None: ...


class NoSignInMetrics:
    """Metrics off: nothing is counted."""

    def signed_in(self, method: str) -> None:
        return None

    def refused(self, method: str, reason: str) -> None:
        return None
