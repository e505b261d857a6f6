"""Prometheus metrics, the one module that imports prometheus_client. Off unless CHATGATE_METRICS is on.

With several worker processes, ``chatgate serve`` gives them one fresh
directory (PROMETHEUS_MULTIPROC_DIR, set before any of them imports
prometheus_client) in which each keeps its counts in memory-mapped files;
/metrics, answered by whichever worker the request reaches, adds them up.
With one process the counts stay in that process, with its CPU and memory.

Labels come from fixed sets only (route templates, HTTP methods, statuses,
ways in, refusal reasons), never from a raw path or anything a client
chose, so the number of series stays bounded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format every Prometheus reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# From a cached auth/me (~1 ms) to an argon2id sign-in queued behind others (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUCCESS = "success"

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR_ENV) or None
        self.registry = CollectorRegistry()
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "chatgate_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chatgate_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sign_ins = Counter(
            "chatgate_signins",
            "End-user sign-ins by way in, and their result: success or the reason for the refusal",
            ["method", "result"],
            registry=self.registry,
        )
        # Made by the first report of a pool: SQLite has none, and should not show one of size 0.
        self._pool_gauges: tuple[Gauge, Gauge] | None = None
        # Labelled children by their labels: labels() takes a lock and builds a key on every call.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # -- what the server reports -------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            shown_method = method if method in KNOWN_METHODS else "other"
            children = (
                self.requests.labels(route, shown_method, str(status)),
                self.latency.labels(route, shown_method),
            )
            if method in KNOWN_METHODS:  # a client's made-up method is counted, never kept as a key
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def signed_in(self, method: str) -> None:
        self.sign_ins.labels(method, SUCCESS).inc()

    def refused(self, method: str, reason: str) -> None:
        self.sign_ins.labels(method, reason).inc()

    def pool_in_use(self, size: int, idle: int, max_size: int) -> None:
        if self._pool_gauges is None:
            self._pool_gauges = (
                Gauge(
                    "chatgate_db_pool_connections",
                    "PostgreSQL connections open in the servers' pools: idle, or in use by a request",
                    ["state"],
                    multiprocess_mode="livesum",
                    registry=self.registry,
                ),
                Gauge(
                    "chatgate_db_pool_max_connections",
                    "PostgreSQL connections the servers' pools may open (CHATGATE_DB_POOL_SIZE per process)",
                    multiprocess_mode="livesum",
                    registry=self.registry,
                ),
            )
        connections, most = self._pool_gauges
        connections.labels("idle").set(idle)
        connections.labels("in_use").set(size - idle)
        most.set(max_size)

    # -- the page ----------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition format, summed over every worker process when there are several."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE
        self.forget_dead_processes()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE

    def forget_dead_processes(self) -> None:
        """Drop the gauges of worker processes that died (uvicorn restarts them): their pools are gone."""
        assert self.multiprocess_dir is not None
        for entry in Path(self.multiprocess_dir).iterdir():
            found = _LIVE_GAUGE_FILE.match(entry.name)
            if found is not None and not _alive(int(found.group(1))):
                multiprocess.mark_process_dead(int(found.group(1)), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
