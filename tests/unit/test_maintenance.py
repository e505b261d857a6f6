"""Housekeeping against a real (migrated) SQLite database: expired sessions and jtis go, live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatgate.app import build_services
from chatgate.domain.models import SessionKind
from chatgate.settings import Settings
from chatgate.storage.migrate import upgrade


def test_prune_forgets_only_what_expired(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHATGATE_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    services = build_services(settings)
    now = datetime.now(UTC)
    with services.ctx.db.write() as store:
        services.sessions.open(store, SessionKind.STAFF, "a" * 24, None, now - timedelta(days=30))
        live = services.sessions.open(store, SessionKind.STAFF, "b" * 24, None, now)
        store.sql.run(
            "INSERT INTO projects (id, name, settings, created_at, updated_at) "
            "VALUES ('p00000000000000000000000', 'p', '{}', :now, :now)",
            now=now,
        )
        store.token_ids.consume("p00000000000000000000000", "old", now - timedelta(hours=1))
        store.token_ids.consume("p00000000000000000000000", "fresh", now + timedelta(hours=1))
        store.token_ids.consume("p00000000000000000000000", "no-exp", None)
    pruned = services.maintenance.prune()
    assert (pruned.sessions, pruned.token_ids) == (1, 1)
    with services.ctx.db.read() as store:
        assert store.sessions.get(live.session.id) is not None
        assert not store.token_ids.consume("p00000000000000000000000", "fresh", None)
        assert store.token_ids.consume("p00000000000000000000000", "old", None)
    services.ctx.db.dispose()


def test_sqlite_database_is_created_in_wal_mode(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHATGATE_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    services = build_services(settings)
    with services.ctx.db.read() as store:
        assert store.sql.scalar("PRAGMA journal_mode") == "wal"
        assert store.sql.scalar("SELECT COUNT(*) FROM alembic_version") == 1
    services.ctx.db.dispose()
