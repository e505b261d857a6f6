"""Run Alembic migrations from code: ``chatgate migrate`` and, unless turned off, every ``serve`` start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from chatgate.storage.engine import make_engine, sqlite_path
from chatgate.storage.reachability import DatabaseUnusable, explain, first_line

MIGRATIONS = Path(__file__).parent / "migrations"
# Instances starting together on one PostgreSQL database migrate one after the other (any fixed number will do).
MIGRATION_LOCK = 0x63686174676174  # "chatgat"


class SchemaProblem(Exception):
    """The schema cannot be brought to, or is not at, the head revision; ``str()`` is one line."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


def current_revision(url: str) -> str | None:
    """The schema's revision, None for a database without Chatgate's schema."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return _revision_of(connection)
    except OperationalError as exc:
        raise DatabaseUnusable(explain(exc, url)) from None
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Refuse a schema that is not at the head revision (for starts that do not migrate)."""
    current, head = current_revision(url), head_revision()
    _require_known(current)
    if current is None:
        raise SchemaProblem(
            "the database has no Chatgate schema yet and CHATGATE_MIGRATE_ON_START is off: run `chatgate migrate`"
        )
    if current != head:
        raise SchemaProblem(
            f"the database schema is at revision {current}, not {head}, and CHATGATE_MIGRATE_ON_START is off:"
            " run `chatgate migrate`"
        )


def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` in one transaction; safe to run on every start. The revision it was at."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if sqlite_path(url) is None:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            current = _revision_of(connection)
            _require_known(current)
            config = alembic_config(url)
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, revision)
            except Exception as exc:  # a failed step: say which change failed and why, in one line
                start = f"revision {current}" if current else "an empty database"
                raise SchemaProblem(
                    f"migrating the database from {start} to {revision_name(revision)} failed: {first_line(exc, url)}"
                ) from exc
    except OperationalError as exc:
        raise DatabaseUnusable(explain(exc, url)) from None
    finally:
        engine.dispose()
    return current


def revision_name(revision: str) -> str:
    return f"revision {head_revision()}" if revision == "head" else f"revision {revision}"


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _require_known(current: str | None) -> None:
    if current is None:
        return
    try:
        ScriptDirectory(str(MIGRATIONS)).get_revision(current)
    except CommandError:
        raise SchemaProblem(
            f"the database schema is at revision {current}, which this version of Chatgate does not know"
            " (was it migrated by a newer version?)"
        ) from None
