"""A consistent copy of a live SQLite database, taken while the server reads and writes it.

SQLite's online backup API copies the pages under one read transaction
(in a single step, so another process's commit cannot restart it): the copy
is the database exactly as one commit left it. In WAL mode the server's
writers go on meanwhile. The copy is written beside its final name, checked,
and renamed into place, so a file with the final name is always whole.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class CopyFailed(Exception):
    """The copy could not be made or did not check out; ``str()`` is one line."""


def copy_database(source: Path, target: Path) -> int:
    """Copy ``source`` to the new file ``target`` (0600, one self-contained file); its size in bytes."""
    partial = target.with_name(target.name + ".partial")
    # Made here, owner-only, and never over an existing file.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        # Never creates the source: a wrong path is an error, not an empty backup.
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            copy = sqlite3.connect(partial)
            try:
                reader.backup(copy)
                # The server switches it back to WAL when it opens it; a backup is one file on its own.
                copy.execute("PRAGMA journal_mode=DELETE")
                verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise CopyFailed(f"the copy of {source} does not check out ({verdict})")
            finally:
                copy.close()
        finally:
            reader.close()
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise CopyFailed(f"cannot copy {source} ({exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size
