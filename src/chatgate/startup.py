"""What ``chatgate serve`` and ``chatgate migrate`` do before any request: make the data directory
private, load the server key, reach the database and migrate it (or check it is migrated).

Each step that fails raises StartupError with one line an operator can act
on; the CLI prints it and exits non-zero, without a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chatgate.crypto.secrets import SERVER_KEY_FILE, load_or_create_server_key
from chatgate.settings import Settings
from chatgate.storage.data_dir import OWNER_ONLY, prepare_data_dir
from chatgate.storage.migrate import SchemaProblem, head_revision, require_head, upgrade
from chatgate.storage.reachability import DatabaseUnusable, probe


class StartupError(Exception):
    """Chatgate cannot start; ``str()`` is one line, without secrets."""


@dataclass(frozen=True)
class Schema:
    """Where the schema was found, and whether this start moved it to the head."""

    found: str | None  # None: a database without Chatgate's schema
    head: str
    migrated: bool

    def __str__(self) -> str:
        if self.migrated:
            start = f"revision {self.found}" if self.found else "nothing"
            return f"migrated the database from {start} to revision {self.head}"
        return f"the database schema is up to date (revision {self.head})"


def prepare(settings: Settings, *, serve: bool, migrate: bool) -> Schema:
    """Everything before the first request; ``serve`` also needs the server key, ``migrate`` upgrades the schema."""
    # Every file made from here on, by this process or its workers (SQLite's -wal and -shm too), is the owner's only.
    os.umask(OWNER_ONLY)
    uses_data_dir = (serve and settings.server_key is None) or settings.database_url.startswith("sqlite")
    # Not made when nothing will be kept there (PostgreSQL and CHATGATE_SERVER_KEY), e.g. on a read-only disk.
    if uses_data_dir or settings.data_dir.exists():
        make_private(settings.data_dir)
    if serve:
        # Made before workers start, so that they all read the same key.
        load_server_key(settings)
    head = head_revision()
    try:
        probe(settings.database_url)
        if not migrate:
            require_head(settings.database_url)
            return Schema(head, head, migrated=False)
        found = upgrade(settings.database_url)
    except (DatabaseUnusable, SchemaProblem) as exc:
        raise StartupError(str(exc)) from None
    return Schema(found, head, migrated=found != head)


def make_private(data_dir: Path) -> None:
    try:
        prepare_data_dir(data_dir)
    except OSError as exc:
        why = "it is not a directory" if data_dir.exists() and not data_dir.is_dir() else exc.strerror or str(exc)
        raise StartupError(f"cannot use the data directory {data_dir} ({why}); set CHATGATE_DATA_DIR") from None


def load_server_key(settings: Settings) -> bytes:
    path = settings.data_dir / SERVER_KEY_FILE
    try:
        return load_or_create_server_key(settings.data_dir, settings.server_key)
    except OSError as exc:
        raise StartupError(f"cannot read or create the server key {path} ({exc.strerror or exc})") from None
    except ValueError:
        raise StartupError(f"{path} does not hold a server key of 64 or more hex characters") from None
