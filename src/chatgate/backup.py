"""``chatgate backup PATH``: what a restore needs, taken from a running server's data directory.

That is the SQLite database, copied consistently while the server runs, and
the server key, without which the project signing secrets in the database
cannot be opened (unless the key comes from CHATGATE_SERVER_KEY, which the
operator keeps). Both land in PATH, a directory only its owner may enter,
as files only the owner may read. Restoring is copying them back into
CHATGATE_DATA_DIR while the server is stopped (docs/deploy.md).

PostgreSQL is backed up with its own tools (pg_dump), not by Chatgate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chatgate.crypto.secrets import SERVER_KEY_FILE
from chatgate.settings import Settings
from chatgate.storage.data_dir import OWNER_ONLY
from chatgate.storage.engine import sqlite_path
from chatgate.storage.sqlite_backup import CopyFailed, copy_database

DATABASE_FILE = "chatgate.db"


class BackupRefused(Exception):
    """No backup was made; ``str()`` is one line saying why."""


@dataclass(frozen=True)
class Backup:
    directory: Path
    database_bytes: int
    server_key_copied: bool


def back_up(settings: Settings, into: Path) -> Backup:
    database = sqlite_path(settings.database_url)
    if database is None:
        raise BackupRefused(
            "the database is PostgreSQL: back it up with pg_dump (docs/deploy.md); chatgate backup copies SQLite only"
        )
    if database == ":memory:" or not Path(database).is_file():
        raise BackupRefused(f"there is no SQLite database at {database} to back up")
    key_file = settings.data_dir / SERVER_KEY_FILE if settings.server_key is None else None
    if key_file is not None and not key_file.is_file():
        raise BackupRefused(f"there is no server key at {key_file}: without it the backup could not be used")
    os.umask(OWNER_ONLY)
    try:
        into.mkdir(mode=0o700, parents=True, exist_ok=True)
        into.chmod(0o700)
    except OSError as exc:
        raise BackupRefused(f"cannot make the backup directory {into} ({exc.strerror or exc})") from None
    for name in (DATABASE_FILE, SERVER_KEY_FILE):
        if (into / name).exists():
            raise BackupRefused(f"{into} already holds a backup ({name}): give a new directory")
    try:
        size = copy_database(Path(database), into / DATABASE_FILE)
        if key_file is not None:
            copy_private(key_file, into / SERVER_KEY_FILE)
    except CopyFailed as exc:
        raise BackupRefused(str(exc)) from None
    except OSError as exc:
        raise BackupRefused(f"cannot write the backup into {into} ({exc.strerror or exc})") from None
    return Backup(into, size, key_file is not None)


def copy_private(source: Path, target: Path) -> None:
    """Copy a small file to a new file only its owner may read, and flush it to disk."""
    data = source.read_bytes()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
