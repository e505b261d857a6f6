"""The data directory holds the database, its lock and the server key: only its owner may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY = 0o077  # the umask that keeps group and others out of every file made later


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` as 0700, or tighten it to 0700, and take group and other access off the files in it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                if mode & OWNER_ONLY:
                    os.chmod(entry.path, mode & ~OWNER_ONLY)
