"""``chatgate serve``, ``chatgate migrate`` and ``chatgate backup PATH``.

A start that cannot go on (a bad setting, an unusable data directory, a
database that cannot be reached or migrated) prints one line on stderr and
exits non-zero: 2 for a setting, 1 for anything else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chatgate.settings import LOG_LEVELS, Settings, SettingsError

# prometheus_client's name for it (chatgate.metrics, which imports prometheus_client, must not be imported yet).
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatgate", description="Chat sign-in your backend vouches for.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="migrate the database (unless CHATGATE_MIGRATE_ON_START=false), then serve HTTP"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None, help="server processes (default CHATGATE_WORKERS, 1)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="default CHATGATE_LOG_LEVEL, info")

    commands.add_parser("migrate", help="create or upgrade the database schema, then exit")

    backup = commands.add_parser(
        "backup", help="copy the SQLite database (consistently, while the server runs) and the server key into PATH"
    )
    backup.add_argument("path", type=Path, help="a new directory for the backup (made 0700)")

    args = parser.parse_args(argv)
    if args.command == "serve" and not os.environ.get("CHATGATE_PUBLIC_URL"):
        # Links, snippets and audiences name the server as it is reached: unset, that is this port here
        # (in the environment, which the worker processes read too).
        os.environ["CHATGATE_PUBLIC_URL"] = f"http://127.0.0.1:{args.port}"
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return fail(str(exc), status=2)
    if args.command == "backup":
        return back_up(settings, args.path)

    from chatgate.startup import StartupError, prepare

    try:
        schema = prepare(
            settings, serve=args.command == "serve", migrate=args.command == "migrate" or settings.migrate_on_start
        )
    except StartupError as exc:
        return fail(str(exc))
    if args.command == "migrate":
        print(f"chatgate: {schema}")
        return 0
    if schema.migrated:
        print(f"chatgate: {schema}", file=sys.stderr)  # beside uvicorn's log lines
    workers = args.workers or settings.workers
    with metrics_directory(settings.metrics and workers > 1):
        return run_server(settings, args.host, args.port, workers, args.log_level)


@contextmanager
def metrics_directory(shared: bool) -> Iterator[None]:
    """Where several worker processes keep their metrics for one another: fresh, 0700, gone when the server is.

    Set before any worker imports prometheus_client, which reads it once; one
    process keeps its metrics in memory, so none is set then (nor one left over
    in the environment, whose stale counts would be added in).
    """
    os.environ.pop(MULTIPROCESS_DIR_ENV, None)
    if not shared:
        yield
        return
    path = tempfile.mkdtemp(prefix="chatgate-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = path
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def back_up(settings: Settings, path: Path) -> int:
    from chatgate.backup import BackupRefused
    from chatgate.backup import back_up as make_backup

    try:
        made = make_backup(settings, path)
    except BackupRefused as exc:
        return fail(str(exc))
    copied = f"chatgate.db ({made.database_bytes} bytes)" + (" and server-key" if made.server_key_copied else "")
    also = "" if made.server_key_copied else "; the server key is CHATGATE_SERVER_KEY: keep it with the backup"
    print(f"chatgate: backed up {copied} to {made.directory}{also}")
    return 0


def run_server(settings: Settings, host: str, port: int, workers: int, log_level: str | None) -> int:
    import uvicorn

    from chatgate.logs import log_config

    uvicorn.run(
        "chatgate.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="chatgate.http.server:BoundedHttpToolsProtocol",
        loop="chatgate.http.accept:ReusePortLoop",
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        log_config=log_config(),
        log_level=log_level or settings.log_level,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        server_header=False,
        # WebSockets: no per-message compression (a zlib context per socket costs ~100 KiB), small
        # frames only (a message is at most 10,000 characters), and a protocol ping every
        # CHATGATE_WS_PING_SECONDS: a peer that does not answer within as long again is dropped.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
    )
    return 0


def fail(message: str, status: int = 1) -> int:
    print(f"chatgate: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
