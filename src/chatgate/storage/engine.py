"""SQLAlchemy engines for migrations only (Alembic, at start-up): requests never use them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite stays as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///…`` URL, else None."""
    parsed = make_url(url)
    return (parsed.database or ":memory:") if parsed.get_backend_name() == "sqlite" else None


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    path = sqlite_path(url)
    if path is not None and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_size=1, max_overflow=0) if path is None else create_engine(url)
