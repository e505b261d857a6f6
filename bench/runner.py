"""Chatgate against its floor and its peer, in one run (see bench/README.md).

Contenders: Chatgate on SQLite and on PostgreSQL (production settings), the
floor app (bench/floor_app.py, same server and JOSE library) and the peer
(Express + jsonwebtoken). wrk loads each on 127.0.0.1 after a warm-up; rounds
interleave the contenders so machine noise hits them alike; medians are kept.
The WebSocket scenarios (live_delivery, idle_sockets) are loaded by
bench/live_load.py, in processes of its own.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench.live_load import raise_fd_limit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
CONNECTIONS = 64
WORKERS = os.cpu_count() or 2
PASSWORD = "bench passphrase 2026"
# Loaded with wrk: requests per second and latency.
WRK_SCENARIOS = (
    "exchange_returning",
    "exchange_first_login",
    "custom_token",
    "customer_login",
    "auth_me",
    "anonymous_signin",
    "password_signin",
    "message_post",
)
# Loaded with WebSockets by bench/live_load.py.
SOCKET_SCENARIOS = ("live_delivery", "idle_sockets")
SCENARIOS = WRK_SCENARIOS + SOCKET_SCENARIOS
# live_delivery: end users, each with a conversation and this many devices (a session and a socket each).
LIVE_USERS = 100
LIVE_DEVICES = 10
LIVE_RATE = 500  # messages per second, over all users
LOAD_PROCESSES = 2  # receiver processes of bench/live_load.py
IDLE_HOLD_SECONDS = 5  # idle_sockets: how long the sockets sit open before the server's RSS is read
TARGETS = {
    "exchange_returning": {"ratio_to_floor": 0.5, "ratio_to_peer": 3.0},
    "auth_me": {"ratio_to_floor": 0.6},
    "exchange_first_login": {"ratio_to_floor": 0.25},
    "password_signin": {"ratio_to_argon2": 0.8},
    # PostgreSQL against the same scenario on SQLite, in the same run.
    "exchange_returning@postgresql": {"ratio_to_sqlite": 0.6},
    "exchange_first_login@postgresql": {"ratio_to_sqlite": 0.5},
    "customer_login@postgresql": {"ratio_to_sqlite": 0.5},
    "custom_token@postgresql": {"ratio_to_sqlite": 0.5},
    "auth_me@postgresql": {"ratio_to_sqlite": 0.8},
    # Posting a message against signing in, on the same database.
    "message_post": {"ratio_to_exchange_returning": 0.8},
    "message_post@postgresql": {"ratio_to_exchange_returning": 0.8},
    # The latencies below hold at this rate only if the server kept up with it.
    "live_delivery": {"posted_per_s": 0.95 * LIVE_RATE},
    "live_delivery@postgresql": {"posted_per_s": 0.95 * LIVE_RATE},
}
# Upper bounds, for the WebSocket scenarios (no requests per second).
CEILINGS = {
    name: limits
    for backend in ("", "@postgresql")
    for name, limits in (
        (f"live_delivery{backend}", {"p50_ms": 10.0, "p99_ms": 50.0, "missed": 0, "foreign": 0}),
        (f"idle_sockets{backend}", {"rss_mib": 1024.0}),
    )
}
P99_TARGET_MS = 50.0


# -- tokens -------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret: str, claims: dict[str, Any]) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


# -- processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    url: str
    popen: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        """Resident memory of the server and all its worker processes."""
        total = 0
        for pid in [self.popen.pid, *_children(self.popen.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return round(total / 1024, 1)

    def open_descriptors(self) -> dict[int, int]:
        """Open file descriptors of each process of the server (its sockets among them), by pid."""
        counts = {}
        for pid in [self.popen.pid, *_children(self.popen.pid)]:
            with contextlib.suppress(OSError):
                counts[pid] = len(os.listdir(f"/proc/{pid}/fd"))
        return counts

    def descriptor_limit(self) -> int:
        """The smallest soft open-file limit among the server's processes (inherited from the runner)."""
        limits = []
        for pid in [self.popen.pid, *_children(self.popen.pid)]:
            with contextlib.suppress(OSError):
                found = re.search(r"Max open files\s+(\d+)", Path(f"/proc/{pid}/limits").read_text())
                limits.append(int(found.group(1)) if found else 0)
        return min(limits, default=0)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            found += [int(child), *_children(int(child))]
    except OSError:
        pass
    return found


def start(name: str, argv: list[str], env: dict[str, str], health: str, cwd: Path = ROOT) -> Process:
    log = open(RESULTS / "tmp" / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    popen = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log.name}")
        try:
            if httpx.get(health, timeout=1).status_code < 500:
                return Process(name, health.rsplit("/", 1)[0], popen)
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    popen.kill()
    raise RuntimeError(f"{name} did not start; see {log.name}")


def start_chatgate(name: str, database_url: str | None, data_dir: Path) -> Process:
    port = free_port()
    env = {
        "CHATGATE_DATA_DIR": str(data_dir),
        "CHATGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # Off by default, else the limits would answer most of the load with 429s; set
        # CHATGATE_BENCH_RATE_LIMITS to high limits to measure what counting costs.
        "CHATGATE_RATE_LIMITS": os.environ.get(
            "CHATGATE_BENCH_RATE_LIMITS",
            "signin_account=0/1,signin_ip=0/1,signup_ip=0/1,anonymous_ip=0/1,message_sender=0/1",
        ),
        "CHATGATE_LOG_LEVEL": "warning",
    }
    if database_url:
        env["CHATGATE_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--workers", str(WORKERS)]
    return start(name, argv, env, f"http://127.0.0.1:{port}/healthz")


def start_floor(secret: str) -> Process:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.floor_app:create_app",
        "--factory",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return start("floor", argv, {"BENCH_SECRET": secret}, f"http://127.0.0.1:{port}/verify")


def start_peer(secret: str) -> Process:
    port = free_port()
    argv = ["node", str(BENCH / "peer" / "server.js")]
    return start(
        "peer", argv, {"BENCH_SECRET": secret, "PORT": str(port)}, f"http://127.0.0.1:{port}/verify", cwd=BENCH / "peer"
    )


# -- wrk ----------------------------------------------------------------------


@dataclass
class Load:
    """One wrk run's request: fixed, or one of many bodies taken in turn."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    bodies_file: Path | None = None  # one JSON body per line, for every-request-different loads
    offset: int = 0  # bodies before this line were used by earlier runs


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def lua_script(load: Load, path: Path) -> Path:
    headers = "".join(f'wrk.headers["{k}"] = {json.dumps(v)}\n' for k, v in load.headers.items())
    if load.bodies_file is None:
        body = f"wrk.body = {json.dumps(load.body)}\n" if load.body is not None else ""
        path.write_text(f'wrk.method = "{load.method}"\n{headers}{body}')
        return path
    # Every request a different body: each thread walks its own stride of the file.
    path.write_text(
        f"""
{headers}
local counter = 0
local threads = {{}}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  bodies = {{}}
  local stride, n, offset = {WORKERS}, 0, {load.offset}
  for line in io.lines({json.dumps(str(load.bodies_file))}) do
    if n >= offset and n % stride == id then table.insert(bodies, line) end
    n = n + 1
  end
  index = 0
end
function request()
  index = index + 1
  if index > #bodies then index = 1 end
  return wrk.format("{load.method}", "{load.path}", nil, bodies[index])
end
"""
    )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, load: Load, seconds: float, connections: int = CONNECTIONS) -> Sample:
    script = lua_script(load, RESULTS / "tmp" / f"load-{secrets.token_hex(4)}.lua")
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(WORKERS),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            # Argon2-bound sign-ins queue for ~1 s at 64 connections: slow, not lost.
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url + load.path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    if load.bodies_file is not None:
        # Never replay a body: the next run starts past every line this one could have sent.
        load.offset += requests + connections * WORKERS
    return Sample(rps, p50, p99, requests, errors)


# -- scenario set-up ----------------------------------------------------------


@dataclass
class Fixture:
    """What one Chatgate server needs to be loaded: a project, users and their tokens."""

    project_id: str
    secret: str
    loads: dict[str, Load]
    # live_delivery and idle_sockets: made on first use (1,000 sign-ins), see live_users().
    live_users: list[dict[str, Any]] | None = None


def prepare(server: Process, tmp: Path, first_logins: int) -> Fixture:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "firstname": "B", "lastname": "B"})
        staff = api.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}).json()["token"]
        pid = api.post("/v1/projects", json={"name": "bench"}, headers={"Authorization": staff}).json()["_id"]
        secret = api.post(f"/v1/{pid}/keys/generate", headers={"Authorization": staff}).json()["jwtSecret"]
        # The customer token is minted once, here, and a full run outlasts the default 15 minutes its
        # iat stays acceptable: allow a day (the check costs the same).
        api.patch(
            f"/v1/projects/{pid}",
            json={"settings": {"max_token_age_seconds": 86400}},
            headers={"Authorization": staff},
        ).raise_for_status()
        exp = int(time.time()) + 7 * 86400
        code = hs256(secret, {"user": {"id": "bench-returning", "email": "ret@example.com"}, "exp": exp})
        exchange = f"/v1/projects/{pid}/auth/external-code"
        session = api.post(exchange, json={"externalAuthCode": code}).json()["token"]
        conversation = api.post(
            f"/v1/projects/{pid}/conversations", json={}, headers={"Authorization": session}
        ).raise_for_status()
        messages = f"/v1/projects/{pid}/conversations/{conversation.json()['id']}/messages"
        custom = hs256(secret, {"_id": "bench-td", "sub": "userexternal", "aud": f"{server.url}/projects/{pid}"})
        api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {custom}"})
        customer = hs256(secret, {"externalId": "bench-k", "iat": int(time.time())})
        api.post(f"/v1/projects/{pid}/auth/customer/login", json={"jwtToken": customer})
        user_email = f"enduser-{secrets.token_hex(4)}@example.com"
        api.post(f"/v1/projects/{pid}/auth/email/signup", json={"email": user_email, "password": PASSWORD})

    run = secrets.token_hex(4)
    bodies = tmp / f"first-logins-{run}.jsonl"
    with bodies.open("w") as f:
        for i in range(first_logins):
            token = hs256(secret, {"user": {"id": f"first-{run}-{i}"}, "exp": exp})
            f.write(json.dumps({"externalAuthCode": token}) + "\n")

    json_headers = {"Content-Type": "application/json"}
    loads = {
        "exchange_returning": Load("POST", exchange, json_headers, json.dumps({"externalAuthCode": code})),
        "exchange_first_login": Load("POST", exchange, json_headers, bodies_file=bodies),
        "custom_token": Load("POST", "/v1/auth/signinWithCustomToken", {"Authorization": f"JWT {custom}"}),
        "customer_login": Load(
            "POST", f"/v1/projects/{pid}/auth/customer/login", json_headers, json.dumps({"jwtToken": customer})
        ),
        "auth_me": Load("GET", f"/v1/projects/{pid}/auth/me", {"Authorization": session}),
        "anonymous_signin": Load("POST", "/v1/auth/signinAnonymously", json_headers, json.dumps({"id_project": pid})),
        "password_signin": Load(
            "POST",
            f"/v1/projects/{pid}/auth/email/signin",
            json_headers,
            json.dumps({"email": user_email, "password": PASSWORD}),
        ),
        "message_post": Load(
            "POST", messages, {**json_headers, "Authorization": session}, json.dumps({"text": "bench message"})
        ),
    }
    return Fixture(pid, secret, loads)


def live_users(server: Process, fixture: Fixture) -> list[dict[str, Any]]:
    """End users with a conversation each and a session per device: ``{"conversation", "tokens"}``."""
    if fixture.live_users is None:
        exp = int(time.time()) + 7 * 86400
        exchange = f"/v1/projects/{fixture.project_id}/auth/external-code"
        users = []
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as api:
            for u in range(LIVE_USERS):
                code = hs256(fixture.secret, {"user": {"id": f"bench-live-{u}"}, "exp": exp})
                tokens = [
                    api.post(exchange, json={"externalAuthCode": code}).raise_for_status().json()["token"]
                    for _ in range(LIVE_DEVICES)
                ]
                conversation = api.post(
                    f"/v1/projects/{fixture.project_id}/conversations", json={}, headers={"Authorization": tokens[0]}
                ).raise_for_status()
                users.append({"conversation": conversation.json()["id"], "tokens": tokens})
        fixture.live_users = users
    return fixture.live_users


# -- argon2 reference ---------------------------------------------------------


def _argon2_worker(seconds: float, queue: Any) -> None:
    import asyncio

    from chatgate.crypto.passwords import PasswordHasherPool

    async def verify_for_a_while() -> int:
        pool = PasswordHasherPool(1)
        stored = await pool.hash_async(PASSWORD)
        count, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            await pool.verify_async(stored, PASSWORD)
            count += 1
        return count

    queue.put(asyncio.run(verify_for_a_while()))


def raw_argon2_rate(seconds: float) -> float:
    """Verifications per second with every core verifying, Chatgate's parameters, no HTTP."""
    queue: Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_argon2_worker, args=(seconds, queue)) for _ in range(WORKERS)]
    for w in workers:
        w.start()
    total = sum(queue.get() for _ in workers)
    for w in workers:
        w.join()
    return total / seconds


# -- the run ------------------------------------------------------------------


@dataclass
class Plan:
    rounds: int
    seconds: float
    warmup: float
    memory_requests: int
    first_logins: int
    live_seconds: float  # live_delivery: posting time measured, after the warm-up
    idle_sockets: int


PLANS = {
    "quick": Plan(
        rounds=2, seconds=5, warmup=2, memory_requests=30_000, first_logins=120_000, live_seconds=5, idle_sockets=10_000
    ),
    "full": Plan(
        rounds=3,
        seconds=15,
        warmup=3,
        memory_requests=100_000,
        first_logins=400_000,
        live_seconds=10,
        idle_sockets=10_000,
    ),
    # A one-minute check that the harness works; its numbers mean little.
    "smoke": Plan(
        rounds=1, seconds=2, warmup=1, memory_requests=2_000, first_logins=30_000, live_seconds=2, idle_sockets=2_000
    ),
}


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[str | None]:
    if not url:
        yield None
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"chatgate_bench_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"bench: PostgreSQL unavailable ({exc.__class__.__name__}); SQLite only")
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def stopped_on_exit(processes: list[Process]) -> Iterator[None]:
    """Stop the processes on leaving: before the scratch database is dropped, which servers would log."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def measure_memory(server: Process, fixture: Fixture, total: int) -> dict[str, Any]:
    """RSS after a warm-up and again after ``total`` exchanges of returning users."""
    load = fixture.loads["exchange_returning"]
    done = wrk(server.url, load, 5).requests
    before = server.rss_mib()
    start_count = done
    while done - start_count < total:
        done += wrk(server.url, load, 10).requests
    after = server.rss_mib()
    return {
        "exchanges": done - start_count,
        "rss_mib_before": before,
        "rss_mib_after": after,
        "growth_mib": round(after - before, 1),
    }


def _load_generator(spec: dict[str, Any], name: str) -> subprocess.Popen[str]:
    """bench/live_load.py in a process of its own, with this spec; its stderr goes to tmp/<name>.log."""
    path = RESULTS / "tmp" / f"{name}-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(spec))
    log = open(RESULTS / "tmp" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [sys.executable, "-m", "bench.live_load", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
    )


def _last_json_line(generator: subprocess.Popen[str], name: str, stdin: str | None = None) -> dict[str, Any]:
    out, _ = generator.communicate(stdin, timeout=600)
    lines = out.strip().splitlines()
    if generator.returncode != 0 or not lines:
        raise RuntimeError(f"bench.live_load failed ({generator.returncode}); see {RESULTS / 'tmp' / name}.log")
    return dict(json.loads(lines[-1]))


def measure_live(server: Process, fixture: Fixture, plan: Plan) -> dict[str, Any]:
    """Time from a message's 201 to its event on the poster's other devices, 1,000 sockets open."""
    spec = {
        "mode": "live",
        "url": server.url,
        "ws_url": server.url.replace("http://", "ws://") + f"/v1/projects/{fixture.project_id}/ws",
        "project_id": fixture.project_id,
        "users": live_users(server, fixture),
        "rate": LIVE_RATE,
        "seconds": plan.live_seconds,
        "warmup": plan.warmup,
        "processes": LOAD_PROCESSES,
        "server_pids": [server.popen.pid, *_children(server.popen.pid)],
    }
    return _last_json_line(_load_generator(spec, f"live-load-{server.name}"), f"live-load-{server.name}")


def measure_idle(server: Process, fixture: Fixture, plan: Plan) -> dict[str, Any]:
    """The server's RSS (all processes) with ``plan.idle_sockets`` authenticated sockets open and idle."""
    sessions = [token for user in live_users(server, fixture) for token in user["tokens"]]
    spec = {
        "mode": "idle",
        "ws_url": server.url.replace("http://", "ws://") + f"/v1/projects/{fixture.project_id}/ws",
        "tokens": sessions,
        "sockets": plan.idle_sockets,
        "processes": LOAD_PROCESSES,
    }
    name = f"idle-load-{server.name}"
    before = server.rss_mib()
    generator = _load_generator(spec, name)
    try:
        opened = json.loads(generator.stdout.readline() or "{}")  # type: ignore[union-attr]
        time.sleep(IDLE_HOLD_SECONDS)
        rss = server.rss_mib()
        descriptors = server.open_descriptors()
    finally:
        last = _last_json_line(generator, name, stdin="\n")  # closes the sockets
    return {
        "sockets": plan.idle_sockets,
        "sessions": min(len(sessions), plan.idle_sockets),
        "opened": opened.get("opened", 0),
        "failed": opened.get("failed", plan.idle_sockets),
        "failures": opened.get("failures", {}),
        "open_seconds": opened.get("open_seconds"),
        "closed_by_server": last.get("closed_by_server", 0),
        "rss_mib_before": before,
        "rss_mib": rss,
        "added_mib": round(rss - before, 1),
        "kib_per_socket": round((rss - before) * 1024 / max(1, opened.get("opened", 0)), 1),
        "server_descriptors": descriptors,
        "server_descriptor_limit": server.descriptor_limit(),
    }


def _print_live(name: str, live: dict[str, Any]) -> None:
    print(
        f"  {name:45s} p50 {live['p50_ms']} ms  p99 {live['p99_ms']} ms  (all sockets p99 {live['p99_ms_all_sockets']})"
        f"  {live['posted_per_s']:.0f} posts/s  post p99 {live['post_p99_ms']} ms  errors {live['post_errors']}"
        f"  missed {live['missed']}/{live['deliveries_expected']}  sockets {live['opened']}/{live['sockets']}"
        f"  cores: server {live['server_cpu']}, poster {live['poster_cpu']}, receivers {live['receiver_cpu']}",
        flush=True,
    )
    if live["open_failures"]:
        print(f"  {'':45s} sockets that did not open: {live['open_failures']}", flush=True)


def _print_idle(name: str, idle: dict[str, Any]) -> None:
    print(
        f"  {name:45s} {idle['opened']}/{idle['sockets']} sockets open ({idle['failed']} failed, "
        f"{idle['open_seconds']} s)  RSS {idle['rss_mib_before']} -> {idle['rss_mib']} MiB "
        f"(+{idle['added_mib']}, {idle['kib_per_socket']} KiB/socket)  fds {idle['server_descriptors']} "
        f"(limit {idle['server_descriptor_limit']})",
        flush=True,
    )
    if idle["failures"]:
        print(f"  {'':45s} failures: {idle['failures']}", flush=True)


def run(plan: Plan, postgres_url: str | None, only: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The whole comparison; with ``only``, just those scenarios, printed and not reported."""
    tmp = RESULTS / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # the logs of the previous run
    tmp.mkdir(parents=True)
    processes: list[Process] = []
    try:
        with (
            tempfile.TemporaryDirectory() as data,
            postgres_database(postgres_url) as pg_url,
            stopped_on_exit(processes),
        ):
            servers = {"sqlite": start_chatgate("chatgate-sqlite", None, Path(data) / "sqlite")}
            if pg_url:
                servers["postgresql"] = start_chatgate("chatgate-postgresql", pg_url, Path(data) / "pg")
            processes += servers.values()
            fixtures = {name: prepare(srv, tmp, plan.first_logins) for name, srv in servers.items()}
            floor_secret = secrets.token_urlsafe(32)
            floor, peer = start_floor(floor_secret), start_peer(floor_secret)
            processes += [floor, peer]
            bearer = {
                "Authorization": f"Bearer {hs256(floor_secret, {'sub': 'bench', 'exp': int(time.time()) + 86400})}"
            }
            verify = Load("GET", "/verify", bearer)

            samples: dict[str, list[Sample]] = {}
            live: dict[str, list[dict[str, Any]]] = {}
            idle: dict[str, dict[str, Any]] = {}
            selected = only or SCENARIOS

            def record(name: str, url: str, load: Load) -> None:
                wrk(url, load, plan.warmup)
                sample = wrk(url, load, plan.seconds)
                samples.setdefault(name, []).append(sample)
                print(
                    f"  {name:45s} {sample.rps:9.0f} req/s  p50 {sample.p50_ms:7.2f} ms  "
                    f"p99 {sample.p99_ms:7.2f} ms  errors {sample.errors}",
                    flush=True,
                )

            argon2_rates: list[float] = []
            for round_no in range(plan.rounds):
                print(f"bench: round {round_no + 1}/{plan.rounds}", flush=True)
                if set(selected) & set(WRK_SCENARIOS):
                    record("floor", floor.url, verify)
                    record("peer", peer.url, verify)
                for scenario in selected:
                    if scenario == "idle_sockets":
                        continue  # once per server, after the rounds
                    for backend, srv in servers.items():
                        name = f"{scenario}@{backend}"
                        if scenario == "live_delivery":
                            live.setdefault(name, []).append(measure_live(srv, fixtures[backend], plan))
                            _print_live(name, live[name][-1])
                        else:
                            record(name, srv.url, fixtures[backend].loads[scenario])
                    if scenario == "password_signin":
                        # The password sign-ins' own reference, in the same round: noise hits both alike.
                        argon2_rates.append(raw_argon2_rate(max(plan.seconds, 5)))
                        print(f"  {'raw argon2id verifications':45s} {argon2_rates[-1]:9.1f} /s", flush=True)

            if "idle_sockets" in selected:
                for backend, srv in servers.items():
                    idle[f"idle_sockets@{backend}"] = measure_idle(srv, fixtures[backend], plan)
                    _print_idle(f"idle_sockets@{backend}", idle[f"idle_sockets@{backend}"])

            if only:
                for backend in servers:
                    posts = samples.get(f"message_post@{backend}")
                    exchanges = samples.get(f"exchange_returning@{backend}")
                    if posts and exchanges:
                        ratio = _median(posts, lambda s: s.rps) / _median(exchanges, lambda s: s.rps)
                        print(f"  message_post@{backend} / exchange_returning@{backend}: {ratio:.2f} (target 0.8)")
                return None
            argon2 = statistics.median(argon2_rates)
            memory = measure_memory(servers["sqlite"], fixtures["sqlite"], plan.memory_requests)
            print(f"bench: memory {memory}")
            return report(samples, argon2, memory, list(servers), live, idle)
    finally:
        # The servers' and load generators' logs stay for a look; the rest (first-login bodies) is large.
        for path in tmp.iterdir():
            if path.suffix != ".log":
                path.unlink()


def _median(samples: list[Sample], pick: Callable[[Sample], float]) -> float:
    return round(statistics.median(pick(s) for s in samples), 2)


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 2) if values else None


def _public_name(scenario: str, backend: str) -> str:
    """SQLite is the default deployment and the scenario names without a suffix."""
    return scenario if backend == "sqlite" else f"{scenario}@{backend}"


def report(
    samples: dict[str, list[Sample]],
    argon2: float,
    memory: dict[str, Any],
    backends: list[str],
    live: dict[str, list[dict[str, Any]]],
    idle: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    floor_rps = _median(samples["floor"], lambda s: s.rps)
    peer_rps = _median(samples["peer"], lambda s: s.rps)
    scenarios: dict[str, Any] = {
        "floor": {
            "rps": floor_rps,
            "p50_ms": _median(samples["floor"], lambda s: s.p50_ms),
            "p99_ms": _median(samples["floor"], lambda s: s.p99_ms),
            "ratio_to_floor": 1.0,
            "ratio_to_peer": round(floor_rps / peer_rps, 3),
        },
        "peer": {
            "rps": peer_rps,
            "p50_ms": _median(samples["peer"], lambda s: s.p50_ms),
            "p99_ms": _median(samples["peer"], lambda s: s.p99_ms),
            "ratio_to_floor": round(peer_rps / floor_rps, 3),
            "ratio_to_peer": 1.0,
        },
    }
    for scenario in WRK_SCENARIOS:
        for backend in backends:
            runs = samples[f"{scenario}@{backend}"]
            rps = _median(runs, lambda s: s.rps)
            entry: dict[str, Any] = {
                "backend": backend,
                "rps": rps,
                "p50_ms": _median(runs, lambda s: s.p50_ms),
                "p99_ms": _median(runs, lambda s: s.p99_ms),
                "ratio_to_floor": round(rps / floor_rps, 3),
                "ratio_to_peer": round(rps / peer_rps, 3),
                "errors": sum(s.errors for s in runs),
            }
            if scenario == "password_signin":
                entry["argon2_verify_rate"] = round(argon2, 1)
                entry["ratio_to_argon2"] = round(rps / argon2, 3)
            if scenario == "message_post":
                exchange = _median(samples[f"exchange_returning@{backend}"], lambda s: s.rps)
                entry["ratio_to_exchange_returning"] = round(rps / exchange, 3)
            if backend != "sqlite" and f"{scenario}@sqlite" in samples:
                entry["ratio_to_sqlite"] = round(rps / _median(samples[f"{scenario}@sqlite"], lambda s: s.rps), 3)
            scenarios[_public_name(scenario, backend)] = entry
    for backend in backends:
        rounds = live[f"live_delivery@{backend}"]
        scenarios[_public_name("live_delivery", backend)] = {
            "backend": backend,
            "users": rounds[0]["users"],
            "sockets": rounds[0]["sockets"],
            "rate": LIVE_RATE,
            # Latency to the second device of the poster (medians of the rounds), and to all its devices.
            "p50_ms": _median_of(rounds, "p50_ms"),
            "p99_ms": _median_of(rounds, "p99_ms"),
            "max_ms": max((r["max_ms"] for r in rounds if r["max_ms"] is not None), default=None),
            "p99_ms_all_sockets": _median_of(rounds, "p99_ms_all_sockets"),
            "posted_per_s": _median_of(rounds, "posted_per_s"),
            "post_p99_ms": _median_of(rounds, "post_p99_ms"),
            "server_cpu": _median_of(rounds, "server_cpu"),
            "messages": sum(r["messages"] for r in rounds),
            "post_errors": sum(r["post_errors"] for r in rounds),
            "deliveries_expected": sum(r["deliveries_expected"] for r in rounds),
            "missed": sum(r["missed"] for r in rounds),
            "foreign": sum(r["foreign"] for r in rounds),
            "sockets_failed": sum(r["sockets"] - r["opened"] for r in rounds),
            "closed_by_server": sum(r["closed_by_server"] for r in rounds),
        }
        scenarios[_public_name("idle_sockets", backend)] = {"backend": backend, **idle[f"idle_sockets@{backend}"]}
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scenarios": scenarios,
        "targets": evaluate(scenarios),
        "memory": memory,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "connections": CONNECTIONS,
            "workers_per_server": WORKERS,
        },
        "versions": versions(),
    }


def evaluate(scenarios: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for scenario, limits in TARGETS.items():
        entry = scenarios.get(scenario)
        if entry is None:  # a backend that did not run (PostgreSQL unavailable)
            continue
        for metric, minimum in limits.items():
            checks[f"{scenario}.{metric} >= {minimum}"] = {"value": entry[metric], "met": entry[metric] >= minimum}
    for scenario, limits in CEILINGS.items():
        entry = scenarios.get(scenario)
        if entry is None:
            continue
        for metric, maximum in limits.items():
            value = entry[metric]  # None: nothing was measured (no socket got an event)
            checks[f"{scenario}.{metric} <= {maximum}"] = {
                "value": value,
                "met": value is not None and value <= maximum,
            }
    for name, entry in scenarios.items():
        if name in ("floor", "peer") or "rps" not in entry:
            continue
        checks[f"{name}.p99_ms <= {P99_TARGET_MS}"] = {
            "value": entry["p99_ms"],
            "met": entry["p99_ms"] <= P99_TARGET_MS,
        }
    return checks


def versions() -> dict[str, str]:
    found = {
        name: version(name)
        for name in (
            "chatgate",
            "starlette",
            "uvicorn",
            "uvloop",
            "httptools",
            "sqlalchemy",
            "psycopg",
            "asyncpg",
            "joserfc",
            "argon2-cffi",
            "orjson",
        )
    }
    found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    found["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    peer_lock = json.loads((BENCH / "peer" / "package-lock.json").read_text())["packages"]
    for package in ("express", "jsonwebtoken"):
        found[package] = peer_lock[f"node_modules/{package}"]["version"]
    return found


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Run of {result['date']} on {result['machine']['cpus']} cores, {CONNECTIONS} connections, "
        f"{result['machine']['workers_per_server']} worker processes per Python server.",
        "",
        "| scenario | backend | req/s | p50 ms | p99 ms | vs floor | vs peer | vs SQLite |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["scenarios"].items():
        if "rps" not in e:
            continue
        backend = e.get("backend", "—")
        label = name.split("@")[0]
        lines.append(
            f"| {label} | {backend} | {e['rps']:.0f} | {e['p50_ms']:.2f} | {e['p99_ms']:.2f} | "
            f"{e['ratio_to_floor']:.2f} | {e['ratio_to_peer']:.2f} | {e.get('ratio_to_sqlite', '—')} |"
        )
    pw = result["scenarios"]["password_signin"]
    lines += [
        "",
        f"Raw argon2id verify rate (all cores, no HTTP): {pw['argon2_verify_rate']:.1f}/s; "
        f"password_signin reaches {pw['ratio_to_argon2']:.2f} of it.",
        "",
    ]
    for name, e in result["scenarios"].items():
        if name.startswith("message_post"):
            lines.append(
                f"message_post ({e['backend']}) reaches {e['ratio_to_exchange_returning']:.2f} "
                "of exchange_returning on the same database."
            )
    lines += [
        "",
        "Live delivery: from a message's 201 to its `message.created` on a second device of the poster "
        "(p50/p99: medians of the rounds; all sockets: every device of the poster).",
        "",
        "| backend | sockets | posted/s | p50 ms | p99 ms | p99 ms, all sockets | POST p99 ms | missed | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["scenarios"].items():
        if name.startswith("live_delivery"):
            lines.append(
                f"| {e['backend']} | {e['sockets']} | {e['posted_per_s']} | {e['p50_ms']} | {e['p99_ms']} | "
                f"{e['p99_ms_all_sockets']} | {e['post_p99_ms']} | {e['missed']} of {e['deliveries_expected']} | "
                f"{e['post_errors'] + e['sockets_failed'] + e['foreign']} |"
            )
    lines += [
        "",
        f"Idle sockets: the server's RSS (all processes) with that many authenticated sockets open for "
        f"{IDLE_HOLD_SECONDS} s, and what they added.",
        "",
        "| backend | sockets open | RSS before MiB | RSS MiB | added MiB | KiB per socket |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["scenarios"].items():
        if name.startswith("idle_sockets"):
            lines.append(
                f"| {e['backend']} | {e['opened']} of {e['sockets']} | {e['rss_mib_before']} | {e['rss_mib']} | "
                f"{e['added_mib']} | {e['kib_per_socket']} |"
            )
    lines += [
        "",
        "| target | value | met |",
        "|---|---:|---|",
    ]
    for check, v in result["targets"].items():
        lines.append(f"| `{check}` | {v['value']} | {'yes' if v['met'] else '**no**'} |")
    m = result["memory"]
    lines += [
        "",
        f"Memory (SQLite server, all processes): {m['rss_mib_before']} MiB after warm-up, "
        f"{m['rss_mib_after']} MiB after {m['exchanges']} more exchanges ({m['growth_mib']:+} MiB).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about five minutes: 2 rounds of 5 s")
    parser.add_argument("--smoke", action="store_true", help="about a minute: checks the harness, not the numbers")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATGATE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="server to create a scratch database on; empty to skip PostgreSQL",
    )
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios to measure while optimising: printed, no results file written",
    )
    args = parser.parse_args()
    # Thousands of sockets: each one a descriptor in the load generator and in a server process,
    # which inherit this limit from here.
    if raise_fd_limit() < 2 * PLANS["full"].idle_sockets:
        print(f"bench: the open-file limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[1]}) is low for idle_sockets")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = tuple(name for name in args.only.split(",") if name)
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    result = run(PLANS[mode], args.postgres_url or None, only)
    if result is None:
        return 0
    result["mode"] = mode
    output = Path(args.output)
    output.write_text(json.dumps(result, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
