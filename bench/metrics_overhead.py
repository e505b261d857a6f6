"""What CHATGATE_METRICS=1 costs a request: the metrics middleware around an app that answers at once.

    PYTHONPATH=src python -m bench.metrics_overhead

Prints the microseconds each request pays, with one worker process (counts in
memory) and with several (counts in memory-mapped files, as ``chatgate serve
--workers N`` sets up). A load test cannot show a few microseconds on a
shared machine; this measures them directly (best of five runs).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

REQUESTS = 100_000
START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"{}"}


class Route:
    path = "/v1/projects/{pid}/auth/me"


async def answer(scope: Any, _receive: Any, send: Any) -> None:
    scope["route"] = Route
    await send(START)
    await send(BODY)


async def discard(_message: Any) -> None:
    return None


async def nothing() -> Any:
    return {}


async def per_request(app: Any) -> float:
    scope = {"type": "http", "method": "GET", "path": "/v1/projects/p/auth/me"}
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(REQUESTS):
            await app(scope, nothing, discard)
        best = min(best, (time.perf_counter() - started) / REQUESTS)
    return best * 1e6


async def measure() -> None:
    from chatgate.http.request_metrics import RequestMetrics
    from chatgate.metrics import Metrics

    bare = await per_request(answer)
    metered = await per_request(RequestMetrics(answer, Metrics().observe_request))
    mode = "several workers" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "one worker"
    print(f"{mode:>15}: {metered - bare:.2f} µs per request ({bare:.2f} µs bare, {metered:.2f} µs metered)")


def main() -> None:
    if len(sys.argv) > 1:
        asyncio.run(measure())
        return
    for shared in (False, True):
        with tempfile.TemporaryDirectory() as directory:
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            if shared:
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            subprocess.run([sys.executable, "-m", "bench.metrics_overhead", "measure"], env=env, check=True)


if __name__ == "__main__":
    main()
