"""What a password must be (NIST SP 800-63B): 8-256 characters, no composition
rules, not one of the commonly used passwords."""

from __future__ import annotations

from functools import lru_cache

MIN_LENGTH = 8
MAX_LENGTH = 256


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most used passwords from public breach corpora.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str) -> str | None:
    """Why this password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if password.lower() in _common_passwords():
        return "is too common; choose another"
    return None
