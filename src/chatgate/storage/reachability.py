"""Can the database be used? If not, why, in one line an operator can act on.

``chatgate serve`` and ``chatgate migrate`` probe the database before they
touch it, so that a stopped server, a wrong URL, a missing database or
refused credentials end the start with one line instead of a driver's
traceback. The probe uses asyncpg, the driver that serves requests, whose
errors carry the server's SQLSTATE whatever language the server speaks.

A line names the host, port, database and user, never the password.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from chatgate.storage.engine import sqlite_path
from chatgate.storage.postgres import dsn_of

# Long enough for a database across a slow network, short enough that a black hole does not hang a start.
PROBE_TIMEOUT_SECONDS = 10.0

# SQLSTATEs of a server that is there but will not take this connection now.
_NOT_NOW = {"55000", "57P01", "57P02", "57P03", "53300"}
_REFUSED_USER = {"28000", "28P01"}
_NO_DATABASE = "3D000"


class DatabaseUnusable(Exception):
    """The database cannot be used; ``str()`` is one line fit for an operator, without secrets."""


def probe(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Open and close one connection; raise DatabaseUnusable saying why that failed."""
    path = sqlite_path(url)
    if path is not None:
        _probe_sqlite(path)
    else:
        asyncio.run(_probe_postgres(url, seconds=timeout))


def _probe_sqlite(path: str) -> None:
    if path == ":memory:":
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30)
        try:
            connection.execute("PRAGMA schema_version")  # reads the file's header: "file is not a database" shows here
        finally:
            connection.close()
    except OSError as exc:
        raise DatabaseUnusable(f"cannot open the SQLite database {path} ({exc.strerror or exc})") from None
    except sqlite3.Error as exc:
        raise DatabaseUnusable(f"cannot open the SQLite database {path} ({exc})") from None


async def _probe_postgres(url: str, *, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            connection = await asyncpg.connect(dsn_of(url))
    except Exception as exc:  # every way a connection fails becomes one line below
        raise DatabaseUnusable(explain(exc, url, seconds)) from None
    await connection.close()


def where(url: str) -> str:
    """``host:port`` of a PostgreSQL URL (its first host), or the local socket."""
    parsed = make_url(url)
    host = parsed.host or "the local socket"
    return f"{host}:{parsed.port or 5432}" if parsed.host else host


def explain(exc: BaseException, url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> str:
    """One line saying why using the database at ``url`` failed with ``exc``."""
    parsed = make_url(url)
    at = where(url)
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == _NO_DATABASE:
        return f'the database "{parsed.database}" does not exist on {at}'
    if sqlstate in _REFUSED_USER:
        user = f'user "{parsed.username}"' if parsed.username else "the connecting user"
        return f"the database at {at} refused {user} (wrong password, unknown user, or no pg_hba.conf entry)"
    if sqlstate in _NOT_NOW:
        return f'the database "{parsed.database}" on {at} does not accept connections now ({first_line(exc, url)})'
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach the database at {at} (connection refused)"
    if isinstance(exc, socket.gaierror):
        return f"cannot reach the database at {at} (host not found)"
    if isinstance(exc, TimeoutError):
        return f"cannot reach the database at {at} (no answer within {timeout:g} s)"
    if isinstance(exc, OSError):
        return f"cannot reach the database at {at} ({exc.strerror or first_line(exc, url)})"
    return f"cannot use the database at {at} ({first_line(exc, url)})"


def first_line(exc: BaseException, url: str | None = None) -> str:
    """The first line of an error's message, with the URL's password blotted out should it appear."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    password = make_url(url).password if url is not None and sqlite_path(url) is None else None
    return text.replace(str(password), "***") if password else text
