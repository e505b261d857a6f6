"""Projects as every sign-in reads them, kept in memory between changes.

A token sign-in reads its project (settings, sealed secret) before anything
else; on PostgreSQL that is a round trip per request for a row that changes
a few times a year. Each process keeps the projects it has read and forgets
one when any process commits a change to it (the ``project.changed`` event,
written in the changing transaction). While the event feed is not connected
(a lost PostgreSQL listener) the cache is bypassed: a stale secret or
setting must never outlive its change by more than the feed's delay.

On SQLite the read costs microseconds, less than the feed's polling delay
would risk: the cache is off there (``enabled=False``).
"""

from __future__ import annotations

import time

from chatgate.domain.conversations import Event
from chatgate.domain.models import Project
from chatgate.services.live import LiveHub
from chatgate.services.ports import Storage

# A bound on staleness should an invalidation ever be lost, and on memory.
MAX_AGE_SECONDS = 60.0
MAX_PROJECTS = 10_000


class ProjectCache:
    def __init__(self, storage: Storage, live: LiveHub, *, enabled: bool) -> None:
        self.storage = storage
        self.live = live
        self.enabled = enabled
        self._projects: dict[str, tuple[Project, float]] = {}
        # Bumped by every change: a read that started before a change must not store its old copy.
        self._generation = 0
        live.on_internal(self._forget)

    async def get(self, project_id: str) -> Project | None:
        if not self.enabled:
            return await self._load(project_id)
        if not self.live.connected:
            self._projects.clear()
            return await self._load(project_id)
        cached = self._projects.get(project_id)
        if cached is not None and time.monotonic() - cached[1] < MAX_AGE_SECONDS:
            return cached[0]
        generation = self._generation
        project = await self._load(project_id)
        if project is not None and generation == self._generation and self.live.connected:
            if len(self._projects) >= MAX_PROJECTS:
                self._projects.clear()
            self._projects[project_id] = (project, time.monotonic())
        return project

    async def fresh(self, project: Project) -> Project | None:
        """The project as stored now, when ``project`` may be an outdated copy (a token failed its key)."""
        if not self.enabled:
            return project
        self._forget_one(project.id)
        return await self.get(project.id)

    async def _load(self, project_id: str) -> Project | None:
        async with self.storage.read() as tx:
            return await tx.projects.get(project_id)

    def _forget(self, event: Event) -> None:
        if event.project_id is not None:
            self._forget_one(event.project_id)

    def _forget_one(self, project_id: str) -> None:
        self._generation += 1
        self._projects.pop(project_id, None)
