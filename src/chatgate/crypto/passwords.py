"""argon2id password hashing, always off the event loop and bounded in parallelism.

Services await these on the event loop; the hashing itself runs on a small
pool of its own (one thread per core by default), so a burst of sign-ins uses
no more CPU than the machine has, and the 19 MiB each hash allocates stays in
those few threads' memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's minimum argon2id profile: m=19 MiB, t=2, p=1.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


class PasswordHasherPool:
    def __init__(self, concurrency: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="argon2")
        # Verified against when the account does not exist, so that unknown
        # emails cost the same time as wrong passwords.
        self._dummy_hash = _HASHER.hash("chatgate-timing-equaliser")

    async def hash_async(self, password: str) -> str:
        """The argon2id hash of ``password``, computed on the pool while the loop goes on."""
        return await asyncio.wrap_future(self._pool.submit(_HASHER.hash, password))

    async def verify_async(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; an unknown account (None) costs a verification too, and fails."""
        matches = await asyncio.wrap_future(self._pool.submit(_verify, stored_hash or self._dummy_hash, password))
        return matches and stored_hash is not None


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
