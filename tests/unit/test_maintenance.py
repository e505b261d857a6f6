"""Housekeeping against a real (migrated) SQLite database: expired sessions, jtis and rate counts go, live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from async_tools import run_async
from chatgate.app import build_services
from chatgate.domain.models import SessionKind
from chatgate.settings import Settings
from chatgate.storage.migrate import upgrade

PROJECT = "p00000000000000000000000"


def test_prune_forgets_only_what_expired(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHATGATE_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    services = build_services(settings)
    storage: Any = services.ctx.storage  # the SQLite adapter, whose transactions also offer raw SQL
    now = datetime.now(UTC)

    async def scenario() -> None:
        async with storage.write() as tx:
            await services.sessions.record(tx, SessionKind.STAFF, "a" * 24, None, now - timedelta(days=30), "password")
            live = await services.sessions.record(tx, SessionKind.STAFF, "b" * 24, None, now, "password")
            await tx.sql.run(
                "INSERT INTO projects (id, name, settings, created_at, updated_at) VALUES (:p, 'p', '{}', :now, :now)",
                p=PROJECT,
                now=now,
            )
            await tx.token_ids.consume(PROJECT, "old", now - timedelta(hours=1))
            await tx.token_ids.consume(PROJECT, "fresh", now + timedelta(hours=1))
            await tx.token_ids.consume(PROJECT, "no-exp", None)
            for rule, window_end in (("signin_ip", now.timestamp() - 1), ("signup_ip", now.timestamp() + 60)):
                await tx.sql.run(
                    "INSERT INTO rate_counters (rule, key, window_start, window_end, hits)"
                    " VALUES (:rule, '192.0.2.1', 0, :end, 3)",
                    rule=rule,
                    end=int(window_end),
                )
            for seq, age in ((1, timedelta(hours=25)), (2, timedelta(hours=23))):
                await tx.sql.run(
                    "INSERT INTO events (seq, project_id, type, payload, created_at)"
                    " VALUES (:seq, :p, 'message.created', '{}', :at)",
                    seq=seq,
                    p=PROJECT,
                    at=now - age,
                )
        pruned = await services.maintenance.prune()
        assert (pruned.sessions, pruned.token_ids, pruned.rate_counts, pruned.events) == (1, 1, 1, 1)
        async with storage.write() as tx:
            assert await tx.sessions.get(live.id) is not None
            assert not await tx.token_ids.consume(PROJECT, "fresh", None)
            assert await tx.token_ids.consume(PROJECT, "old", None)
            assert await tx.sql.scalar("SELECT rule FROM rate_counters") == "signup_ip"
            assert await tx.events.oldest_seq() == 2
        await storage.close()

    run_async(scenario())


def test_sqlite_database_is_created_in_wal_mode(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHATGATE_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    storage: Any = build_services(settings).ctx.storage

    async def scenario() -> tuple[str, int]:
        async with storage.read() as tx:
            mode = await tx.sql.scalar("PRAGMA journal_mode")
            versions = await tx.sql.scalar("SELECT COUNT(*) FROM alembic_version")
        await storage.close()
        return mode, versions

    assert run_async(scenario()) == ("wal", 1)
