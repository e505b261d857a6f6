"""Copies of rows that every request reads and that rarely change, kept per process on PostgreSQL.

A token sign-in reads its project (settings, sealed secret) before anything
else, every authenticated request reads its session, and ``auth/me`` (polled
by the browser API's ``isLoggedIn``) its session's user; on PostgreSQL each
is a round trip for a row that changes a few times a year (a project), once
(a session, when it ends) or at most once a minute (a user, when it signs in
again). Each process keeps what it has read and forgets an entry when any
process commits a change to it: the change writes an event in its own
transaction (``project.changed``, ``session.revoked``), the committing
process forgets at once, the others when the event feed brings it
(milliseconds later). A user's names and last visit are not worth a stored
event on every sign-in: their change is a hint (``user.changed``), announced
after the commit and never stored, so a hint lost with a process that died
in that instant leaves a copy of them stale until MAX_AGE_SECONDS (ended
sessions are always stored events). While the feed is not connected (a lost
PostgreSQL listener) the copies are bypassed, and what was kept before it
reconnected is dropped; a copy is kept at most MAX_AGE_SECONDS in any case.

On SQLite a read costs microseconds, less than the feed's polling delay
would risk: the caches are off there (``enabled=False``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from chatgate.domain.conversations import Event, EventType
from chatgate.domain.models import EndUser, Project, Session
from chatgate.services.live import LiveHub
from chatgate.services.ports import Storage

# A bound on staleness should an invalidation ever be lost, and on memory.
MAX_AGE_SECONDS = 60.0
MAX_ENTRIES = 10_000

V = TypeVar("V")


class Copies(Generic[V]):
    """Entries by id, loaded on a miss, forgotten when an event names them (``keys_of``)."""

    def __init__(
        self,
        live: LiveHub,
        load: Callable[[str], Awaitable[V | None]],
        keys_of: Callable[[Event], list[str] | None],
        *,
        enabled: bool,
    ) -> None:
        self.live = live
        self.enabled = enabled
        self._load = load
        self._keys_of = keys_of
        self._entries: dict[str, tuple[V, float]] = {}
        # Bumped by every change: a read that started before a change must not store its old copy.
        self._generation = 0
        self._epoch = live.epoch
        live.on_change(self._forget_for)

    async def get(self, key: str) -> V | None:
        if not self.enabled:
            return await self._load(key)
        if not self.live.connected or self.live.epoch != self._epoch:
            self._clear()
            self._epoch = self.live.epoch
            if not self.live.connected:
                return await self._load(key)
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[1] < MAX_AGE_SECONDS:
            return cached[0]
        generation = self._generation
        value = await self._load(key)
        if value is not None and generation == self._generation and self.live.connected:
            if len(self._entries) >= MAX_ENTRIES:
                self._clear()
            self._store(key, value)
        return value

    def forget(self, key: str) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def _store(self, key: str, value: V) -> None:
        self._entries[key] = (value, time.monotonic())

    def _clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _forget_for(self, event: Event) -> None:
        keys = self._keys_of(event)
        if keys is None:  # the event may concern any entry
            self._clear()
            return
        for key in keys:
            self.forget(key)


class ProjectCache(Copies[Project]):
    def __init__(self, storage: Storage, live: LiveHub, *, enabled: bool) -> None:
        async def load(project_id: str) -> Project | None:
            async with storage.read() as tx:
                return await tx.projects.get(project_id)

        super().__init__(live, load, _changed_project, enabled=enabled)

    async def fresh(self, project: Project) -> Project | None:
        """The project as stored now, when ``project`` may be an outdated copy (a token failed its key)."""
        if not self.enabled:
            return project
        self.forget(project.id)
        return await self.get(project.id)


class SessionCache(Copies[Session]):
    """Sessions as stored; whether one is still live (expiry, its token) is checked on every use."""

    def __init__(self, storage: Storage, live: LiveHub, *, enabled: bool) -> None:
        async def load(session_id: str) -> Session | None:
            async with storage.read() as tx:
                return await tx.sessions.get(session_id)

        super().__init__(live, load, _ended_session, enabled=enabled)


def _changed_project(event: Event) -> list[str]:
    return [event.project_id] if event.type is EventType.PROJECT_CHANGED and event.project_id else []


def _ended_session(event: Event) -> list[str] | None:
    if event.type is not EventType.SESSION_REVOKED:
        return []
    # One session, or (no session named) every session of a user: forget them all, it is rare.
    return [event.session_id] if event.session_id else None


class SessionUserCache(Copies[tuple[Session, EndUser]]):
    """End-user sessions with their user, for ``auth/me``: forgotten when the session ends, and every
    session of a user kept here when that user changes or all of their sessions end."""

    def __init__(self, storage: Storage, live: LiveHub, *, enabled: bool) -> None:
        async def load(session_id: str) -> tuple[Session, EndUser] | None:
            async with storage.read() as tx:
                session, user = await tx.sessions.get_with_end_user(session_id)
            return (session, user) if session is not None and user is not None else None

        super().__init__(live, load, _ended_session, enabled=enabled)
        self._sessions_of: dict[str, set[str]] = {}  # user id -> the session ids kept for that user

    def _store(self, key: str, value: tuple[Session, EndUser]) -> None:
        super()._store(key, value)
        self._sessions_of.setdefault(value[1].id, set()).add(key)

    def _clear(self) -> None:
        super()._clear()
        self._sessions_of.clear()

    def _forget_for(self, event: Event) -> None:
        concerns_user = event.type is EventType.USER_CHANGED or (
            event.type is EventType.SESSION_REVOKED and event.session_id is None
        )
        if not concerns_user or event.user_id is None:
            super()._forget_for(event)
            return
        self._generation += 1  # a copy of this user being read right now is already old
        for session_id in self._sessions_of.pop(event.user_id, ()):
            self._entries.pop(session_id, None)
