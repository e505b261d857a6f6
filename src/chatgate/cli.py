"""``chatgate serve`` and ``chatgate migrate``."""

from __future__ import annotations

import argparse
import os
import sys

from chatgate.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatgate", description="Chat sign-in your backend vouches for.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the database, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("CHATGATE_WORKERS", "1")),
        help="server processes (default 1; CHATGATE_WORKERS)",
    )
    serve.add_argument("--log-level", default=os.environ.get("CHATGATE_LOG_LEVEL", "info"))

    commands.add_parser("migrate", help="create or upgrade the database schema, then exit")

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"chatgate: {exc}", file=sys.stderr)
        return 2

    from chatgate.crypto.secrets import load_or_create_server_key
    from chatgate.storage.data_dir import OWNER_ONLY, prepare_data_dir
    from chatgate.storage.migrate import upgrade

    # Every file made from here on, by this process or its workers (SQLite's -wal and -shm too), is the owner's only.
    os.umask(OWNER_ONLY)
    # Not made when nothing will be kept there (PostgreSQL and CHATGATE_SERVER_KEY), e.g. on a read-only disk.
    if settings.server_key is None or settings.database_url.startswith("sqlite") or settings.data_dir.exists():
        try:
            prepare_data_dir(settings.data_dir)
        except OSError as exc:
            print(f"chatgate: cannot make {settings.data_dir} private: {exc}", file=sys.stderr)
            return 2
    # Create the server key before workers start, so they all read the same one.
    load_or_create_server_key(settings.data_dir, settings.server_key)
    upgrade(settings.database_url)
    if args.command == "migrate":
        print("chatgate: database is up to date")
        return 0

    import uvicorn

    from chatgate.logs import log_config

    uvicorn.run(
        "chatgate.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http="chatgate.http.server:BoundedHttpToolsProtocol",
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        log_config=log_config(),
        log_level=args.log_level,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
