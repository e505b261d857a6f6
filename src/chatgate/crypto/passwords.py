"""argon2id password hashing, always off the event loop and bounded in parallelism.

Services call these from worker threads; the semaphore keeps a burst of
sign-ins from using more memory (19 MiB each) and CPU than the machine has.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's minimum argon2id profile: m=19 MiB, t=2, p=1.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


class PasswordHasherPool:
    def __init__(self, concurrency: int) -> None:
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        # Verified against when the account does not exist, so that unknown
        # emails cost the same time as wrong passwords.
        self._dummy_hash = _HASHER.hash("chatgate-timing-equaliser")

    def hash(self, password: str) -> str:
        with self._slots:
            return _HASHER.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        with self._slots:
            try:
                return _HASHER.verify(stored_hash or self._dummy_hash, password) and stored_hash is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
