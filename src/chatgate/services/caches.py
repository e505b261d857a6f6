"""Copies of rows that every request reads and that rarely change, kept per process on PostgreSQL.

A token sign-in reads its project (settings, sealed secret) before anything
else, and every authenticated request reads its session; on PostgreSQL each
is a round trip for a row that changes a few times a year (a project) or
once (a session, when it ends). Each process keeps what it has read and
forgets an entry when any process commits a change to it: the change writes
an event in its own transaction (``project.changed``, ``session.revoked``),
the committing process forgets at once, the others when the event feed
brings it (milliseconds later). While the feed is not connected (a lost
PostgreSQL listener) the copies are bypassed; a copy is kept at most
MAX_AGE_SECONDS in any case.

On SQLite a read costs microseconds, less than the feed's polling delay
would risk: the caches are off there (``enabled=False``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from chatgate.domain.conversations import Event, EventType
from chatgate.domain.models import Project, Session
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
        live.on_change(self._forget_for)

    async def get(self, key: str) -> V | None:
        if not self.enabled:
            return await self._load(key)
        if not self.live.connected:
            self._entries.clear()
            return await self._load(key)
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[1] < MAX_AGE_SECONDS:
            return cached[0]
        generation = self._generation
        value = await self._load(key)
        if value is not None and generation == self._generation and self.live.connected:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (value, time.monotonic())
        return value

    def forget(self, key: str) -> None:
        self._generation += 1
        self._entries.pop(key, None)

    def _forget_for(self, event: Event) -> None:
        keys = self._keys_of(event)
        if keys is None:  # the event may concern any entry
            self._generation += 1
            self._entries.clear()
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
