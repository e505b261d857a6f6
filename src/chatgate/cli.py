"""``chatgate serve``, ``chatgate migrate`` and ``chatgate backup PATH``.

A start that cannot go on (a bad setting, an unusable data directory, a
database that cannot be reached or migrated) prints one line on stderr and
exits non-zero: 2 for a setting, 1 for anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatgate.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatgate", description="Chat sign-in your backend vouches for.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="migrate the database (unless CHATGATE_MIGRATE_ON_START=false), then serve HTTP"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None, help="server processes (default CHATGATE_WORKERS, 1)")
    serve.add_argument("--log-level", default=None, help="default CHATGATE_LOG_LEVEL, info")

    commands.add_parser("migrate", help="create or upgrade the database schema, then exit")

    backup = commands.add_parser(
        "backup", help="copy the SQLite database (consistently, while the server runs) and the server key into PATH"
    )
    backup.add_argument("path", type=Path, help="a new directory for the backup (made 0700)")

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return fail(str(exc), status=2)
    if args.command == "backup":
        return back_up(settings, args.path)

    from chatgate.startup import StartupError, prepare

    try:
        done = prepare(
            settings, serve=args.command == "serve", migrate=args.command == "migrate" or settings.migrate_on_start
        )
    except StartupError as exc:
        return fail(str(exc))
    if args.command == "migrate":
        print(f"chatgate: {done}")
        return 0
    if done.startswith("migrated"):
        print(f"chatgate: {done}", file=sys.stderr)  # beside uvicorn's log lines
    return run_server(settings, args.host, args.port, args.workers or settings.workers, args.log_level)


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
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        log_config=log_config(),
        log_level=log_level or settings.log_level,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        server_header=False,
    )
    return 0


def fail(message: str, status: int = 1) -> int:
    print(f"chatgate: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
