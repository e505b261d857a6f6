"""Live delivery inside one process: which sockets see which committed events.

Every event reaches this process through the ``EventFeed``, in seq order,
the events this process committed included (a few milliseconds after the
commit); an event reaches a socket once. ``LiveHub.committed`` only makes
this process's caches forget what it changed at once, before the feed says so.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from chatgate.domain.conversations import HINT_SEQ, Event, EventType, Viewer
from chatgate.services.ports import EventFeed

log = logging.getLogger("chatgate.live")

# Seqs delivered here first; the feed brings them again a moment later.
REMEMBERED_SEQS = 4096


class Subscriber(Protocol):
    """One open socket."""

    @property
    def viewer(self) -> Viewer: ...

    def push(self, event: Event) -> None:
        """Queue the event for the socket; never waits (a socket that cannot keep up is dropped)."""


class LiveHub:
    def __init__(self, feed: EventFeed) -> None:
        self.feed = feed
        self._staff: dict[str, set[Subscriber]] = defaultdict(set)  # by project
        self._users: dict[str, set[Subscriber]] = defaultdict(set)  # by end user
        self._sessions: dict[str, set[Subscriber]] = defaultdict(set)
        self._delivered: OrderedDict[int, None] = OrderedDict()
        self._internal: list[Callable[[Event], None]] = []

    async def start(self) -> None:
        await self.feed.start(self._from_feed)

    async def close(self) -> None:
        await self.feed.close()

    def on_change(self, handler: Callable[[Event], None]) -> None:
        """Run ``handler`` for every event of any process (a project changed, a session ended …), and
        for this process's own events as soon as they commit too: it must not mind seeing one twice."""
        self._internal.append(handler)

    @property
    def connected(self) -> bool:
        return self.feed.connected

    @property
    def epoch(self) -> int:
        return self.feed.epoch

    def subscribe(self, subscriber: Subscriber) -> None:
        viewer = subscriber.viewer
        self._sessions[viewer.session_id].add(subscriber)
        if viewer.end_user_id is None:
            self._staff[viewer.project_id].add(subscriber)
        else:
            self._users[viewer.end_user_id].add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        viewer = subscriber.viewer
        _discard(self._sessions, viewer.session_id, subscriber)
        if viewer.end_user_id is None:
            _discard(self._staff, viewer.project_id, subscriber)
        else:
            _discard(self._users, viewer.end_user_id, subscriber)

    @property
    def socket_count(self) -> int:
        return sum(len(subs) for subs in self._sessions.values())

    def committed(self, events: Sequence[Event]) -> None:
        """Events this process has just committed: its caches forget what changed at once. What
        sockets see comes from the feed, which delivers every process's events in one order (by seq),
        so that a device resuming after the last seq it saw misses nothing."""
        for event in events:
            for handler in self._internal:
                handler(event)

    async def _from_feed(self, event: Event) -> None:
        self._deliver_once(event)

    def _deliver_once(self, event: Event) -> None:
        # A feed that reconnects reads again what it may have delivered already (hints are never read again).
        if event.seq != HINT_SEQ:
            if event.seq in self._delivered:
                return
            self._remember(event.seq)
        self._dispatch(event)

    def _remember(self, seq: int) -> None:
        self._delivered[seq] = None
        if len(self._delivered) > REMEMBERED_SEQS:
            self._delivered.popitem(last=False)

    def _dispatch(self, event: Event) -> None:
        for handler in self._internal:
            handler(event)
        if event.internal:
            for subscriber in self._staff.get(event.project_id or "", set()).copy():
                if subscriber.viewer.loses_access(event):
                    subscriber.push(event)
            return
        for subscriber in self._audience(event):
            if subscriber.viewer.sees(event):
                subscriber.push(event)

    def _audience(self, event: Event) -> list[Subscriber]:
        if event.session_id is not None:
            return list(self._sessions.get(event.session_id, ()))
        users = list(self._users.get(event.user_id, ())) if event.user_id else []
        if event.type is EventType.SESSION_REVOKED or event.project_id is None:
            return users
        return users + list(self._staff.get(event.project_id, ()))


def _discard(index: dict[str, set[Subscriber]], key: str, subscriber: Subscriber) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(subscriber)
        if not subs:
            del index[key]
