"""The WebSocket load of bench/runner.py, in processes of its own: ``python -m bench.live_load SPEC.json``.

Two modes (``mode`` in the spec, a JSON file the runner writes):

- ``live``: every device of every end user holds a socket; the poster posts
  ``rate`` messages per second, one user after another, each as that user's
  first device. For each message the time from its 201 to its
  ``message.created`` on the user's sockets. Prints one JSON line: the result.
- ``idle``: opens ``sockets`` sockets over the given sessions, prints
  ``{"opened": n, ...}`` once all are open, holds them until a line arrives on
  stdin, closes them and prints a last JSON line.

Sockets live in ``processes`` receiver processes and the poster in this one,
so that no client event loop carries the whole load (the machine has few
cores, and a busy client loop would show up as server latency). All times
are ``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

# Handshakes in flight per receiver process: enough to keep the server busy, fewer than its listen backlog.
OPEN_CONCURRENCY = 100
# After the last post, how long sockets may take to bring its event before it counts as missed.
DRAIN_SECONDS = 2.0
POST_CONNECTIONS = 64
SECOND_DEVICE = 1  # device 0 posts; device 1 is "the user's other device" whose latency is reported


def raise_fd_limit() -> int:
    """Soft open-file limit up to the hard one (each socket is a descriptor); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_seconds(pids: list[int]) -> float:
    """CPU time of the server's processes so far (utime + stime from /proc)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Device:
    user: int  # index into the spec's users
    device: int  # index of the device (socket) among the user's
    token: str  # the session token without its "JWT " prefix


# -- receivers (child processes) ----------------------------------------------


def _receiver(ws_url: str, devices: list[Device], collect: bool, pipe: Connection) -> None:
    raise_fd_limit()
    uvloop.run(_receive(ws_url, devices, collect, pipe))


async def _receive(ws_url: str, devices: list[Device], collect: bool, pipe: Connection) -> None:
    arrivals: list[tuple[str, int, int, float]] = []  # (message id, user, device, monotonic time)
    failures: Counter[str] = Counter()
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def listen(ws: ClientConnection, device: Device) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                now = time.monotonic()
                frame = orjson.loads(raw)
                if frame.get("type") == "message.created":
                    arrivals.append((frame["message"]["id"], device.user, device.device, now))

    async def open_one(device: Device) -> ClientConnection | None:
        async with limit:
            try:
                ws = await connect(
                    f"{ws_url}?token={device.token}",
                    compression=None,  # the server does not deflate either
                    proxy=None,
                    open_timeout=120,
                    ping_interval=None,  # the server pings every 20 s; the library answers for us
                    close_timeout=5,
                )
                ready = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                if ready.get("type") != "ready":
                    raise RuntimeError(f"first frame {ready.get('type')!r}, not ready")
                return ws
            except Exception as exc:
                failures[f"{exc.__class__.__name__}: {str(exc)[:80]}"] += 1
                return None

    started = time.monotonic()
    sockets = await asyncio.gather(*(open_one(d) for d in devices))
    opened = [(ws, d) for ws, d in zip(sockets, devices, strict=True) if ws is not None]
    # "ready" came after the server subscribed the socket: from here on it gets every event.
    readers = [asyncio.create_task(listen(ws, d)) for ws, d in opened] if collect else []
    pipe.send(
        {
            "opened": len(opened),
            "failed": dict(failures),
            "open_seconds": round(time.monotonic() - started, 2),
            "opened_ids": [(d.user, d.device) for _, d in opened],
        }
    )
    cpu_before, wall_before = _cpu_seconds(), time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
    cpu = (_cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    closed_by_server = sum(ws.state is not State.OPEN for ws, _ in opened)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws, _ in opened), return_exceptions=True)
    pipe.send({"arrivals": arrivals, "closed_by_server": closed_by_server, "cpu": cpu})


class Receivers:
    """Receiver processes, each holding a share of the devices' sockets."""

    def __init__(self, ws_url: str, devices: list[Device], processes: int, collect: bool) -> None:
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.Process] = []
        for share in range(processes):
            ours, theirs = multiprocessing.Pipe()
            proc = multiprocessing.Process(
                target=_receiver, args=(ws_url, devices[share::processes], collect, theirs), daemon=True
            )
            proc.start()
            self.pipes.append(ours)
            self.processes.append(proc)

    def wait_open(self) -> dict[str, Any]:
        reports = [pipe.recv() for pipe in self.pipes]
        failed: Counter[str] = Counter()
        for report in reports:
            failed.update(report["failed"])
        return {
            "opened": sum(r["opened"] for r in reports),
            "failed": sum(failed.values()),
            "failures": dict(failed.most_common(5)),
            "open_seconds": max(r["open_seconds"] for r in reports),
            "opened_ids": {tuple(i) for r in reports for i in r["opened_ids"]},
        }

    def stop(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send("stop")
        results = [pipe.recv() for pipe in self.pipes]
        for proc in self.processes:
            proc.join(timeout=30)
        return results


# -- poster (this process) -----------------------------------------------------


@dataclass
class Post:
    index: int
    user: int
    measured: bool  # posted after the warm-up
    sent: float
    answered: float = 0.0
    status: int = 0
    message_id: str = ""


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time, reading Content-Length bodies only.

    Not httpx: its pool polls every connection for every request, and even one client per
    connection costs ~1.4 ms of CPU per post here, most of a core at 500 posts/s; a busy
    poster reads its 201s late, and that shows up as (negative) delivery latency.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, authorization: str, body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: {authorization}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
            if length is None:
                raise ValueError("no Content-Length")
            answer = await reader.readexactly(int(length.group(1)))
        except BaseException:
            self.close()
            raise
        if re.search(rb"\r\nconnection: *close", head, re.IGNORECASE):
            self.close()
        return status, answer

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def post_messages(spec: dict[str, Any]) -> tuple[list[Post], float]:
    """Post at ``rate`` messages/s for warm-up + ``seconds``; the posts and the seconds their sending took."""
    users, rate = spec["users"], float(spec["rate"])
    total = int(rate * (spec["warmup"] + spec["seconds"]))
    warmup_posts = int(rate * spec["warmup"])
    posts: list[Post] = []
    address = urlsplit(spec["url"])
    # Idle connections; taking one bounds the posts in flight.
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(POST_CONNECTIONS):
        idle.put_nowait(HttpConnection(address.hostname or "127.0.0.1", address.port or 80))

    async def post(entry: Post, connection: HttpConnection) -> None:
        user = users[entry.user]
        try:
            entry.status, answer = await connection.post(
                f"/v1/projects/{spec['project_id']}/conversations/{user['conversation']}/messages",
                user["tokens"][0],
                orjson.dumps({"text": f"live delivery {entry.index}"}),
            )
            entry.answered = time.monotonic()
            if entry.status == 201:
                entry.message_id = orjson.loads(answer)["id"]
        except (OSError, ValueError, asyncio.IncompleteReadError):
            entry.answered = time.monotonic()  # status 0: no answer
        finally:
            idle.put_nowait(connection)

    # Post k goes at start + k/rate whether or not earlier ones were answered, as long as a
    # connection is free: a server that falls behind lowers posted_per_s instead of queueing posts.
    tasks = []
    start = time.monotonic() + 0.05
    for index in range(total):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = await idle.get()
        entry = Post(index, index % len(users), index >= warmup_posts, time.monotonic())
        posts.append(entry)
        tasks.append(asyncio.create_task(post(entry, connection)))
    sending = time.monotonic() - start
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return posts, sending


def _percentile(values: list[float], fraction: float) -> float | None:
    if len(values) < 2:
        return round(values[0], 2) if values else None
    return round(statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1], 2)


def run_live(spec: dict[str, Any]) -> dict[str, Any]:
    users = spec["users"]
    devices = [
        Device(u, d, token.removeprefix("JWT "))
        for u, user in enumerate(users)
        for d, token in enumerate(user["tokens"])
    ]
    receivers = Receivers(spec["ws_url"], devices, spec["processes"], collect=True)
    opened = receivers.wait_open()
    cpu_before, server_before, wall_before = _cpu_seconds(), _server_cpu_seconds(spec["server_pids"]), time.monotonic()
    posts, sending = uvloop.run(post_messages(spec))
    wall = time.monotonic() - wall_before
    poster_cpu = (_cpu_seconds() - cpu_before) / wall
    server_cpu = (_server_cpu_seconds(spec["server_pids"]) - server_before) / wall
    time.sleep(DRAIN_SECONDS)
    results = receivers.stop()

    # Every socket that opened should see every message its user posted (answered 201), and no other.
    owner = {p.message_id: p.user for p in posts if p.message_id}
    arrived: dict[tuple[str, int], float] = {}
    foreign = 0
    for result in results:
        for message_id, user, device, at in result["arrivals"]:
            if owner.get(message_id, user) != user:
                foreign += 1
            else:
                arrived[(message_id, device)] = at
    devices_of: dict[int, list[int]] = {}
    for user, device in opened["opened_ids"]:
        devices_of.setdefault(user, []).append(device)
    second_device: list[float] = []
    every_device: list[float] = []
    expected = missed = 0
    for post in posts:
        if not post.message_id:
            continue
        for device in devices_of.get(post.user, []):
            expected += 1
            at = arrived.get((post.message_id, device))
            if at is None:
                missed += 1
            elif post.measured:
                latency = (at - post.answered) * 1000
                every_device.append(latency)
                if device == SECOND_DEVICE:
                    second_device.append(latency)
    measured = [p for p in posts if p.measured]
    ok = [p for p in measured if p.status == 201]
    post_ms = [(p.answered - p.sent) * 1000 for p in ok]
    return {
        "users": len(users),
        "sockets": len(devices),
        "opened": opened["opened"],
        "open_failures": opened["failures"],
        "open_seconds": opened["open_seconds"],
        "messages": len(ok),
        "post_errors": sum(p.status != 201 for p in posts),  # 0: no answer
        "post_statuses": dict(Counter(p.status for p in posts if p.status != 201)),
        "posted_per_s": round(len(posts) / sending, 1),
        "post_p50_ms": _percentile(post_ms, 0.5),
        "post_p99_ms": _percentile(post_ms, 0.99),
        "p50_ms": _percentile(second_device, 0.5),
        "p99_ms": _percentile(second_device, 0.99),
        "max_ms": round(max(second_device), 2) if second_device else None,
        "p99_ms_all_sockets": _percentile(every_device, 0.99),
        "deliveries_expected": expected,
        "missed": missed,
        "foreign": foreign,
        "closed_by_server": sum(r["closed_by_server"] for r in results),
        # Cores used while posting: the server's processes, and the client's (near 1.0 for one of
        # the client's processes and the client, not the server, sets the pace).
        "server_cpu": round(server_cpu, 2),
        "poster_cpu": round(poster_cpu, 2),
        "receiver_cpu": [round(r["cpu"], 2) for r in results],
    }


def run_idle(spec: dict[str, Any]) -> dict[str, Any]:
    tokens = [t.removeprefix("JWT ") for t in spec["tokens"]]
    # Devices share the sessions round robin: several sockets per session, as for a user with many tabs.
    devices = [Device(i % len(tokens), i, tokens[i % len(tokens)]) for i in range(spec["sockets"])]
    receivers = Receivers(spec["ws_url"], devices, spec["processes"], collect=False)
    opened = receivers.wait_open()
    opened.pop("opened_ids")
    print(json.dumps(opened), flush=True)
    sys.stdin.readline()  # the runner has measured the server
    results = receivers.stop()
    return {**opened, "closed_by_server": sum(r["closed_by_server"] for r in results)}


def main() -> int:
    raise_fd_limit()
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    result = run_live(spec) if spec["mode"] == "live" else run_idle(spec)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
