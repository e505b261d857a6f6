"""Planner statistics for Chatgate's tables when PostgreSQL's autovacuum is off.

Without statistics the planner guesses that ``project_id = $1`` matches one
row, so every index that starts with ``project_id`` looks as cheap as the
unique one, and it picks the smallest: a login's ``project_id = $1 AND
external_id = $2`` then reads all of the project's users through
``(project_id, id)``. Autovacuum's analyze prevents that (after 50 rows and
then every 10% of a table changed); with autovacuum off nothing does, so
Chatgate runs ``ANALYZE`` on its own tables by the same rule; new
statistics make PostgreSQL plan again the prepared statements that read the
table, on every connection.

Autovacuum visits a database at most once a minute (its naptime), and so does
this for a table it has analyzed before: a table of sign-ins grows by its 10%
every few seconds under load, and each ANALYZE (30,000 sampled rows, every
connection's statements planned again) is a burst of work that the requests
queued behind it feel. A table never analyzed is analyzed within seconds. The
ANALYZE itself runs at autovacuum's pace (its cost delay), not at full speed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from chatgate.storage.tables import metadata

log = logging.getLogger("chatgate")

CHECK_SECONDS = 2.0
# autovacuum_analyze_threshold and autovacuum_analyze_scale_factor's defaults.
ANALYZE_THRESHOLD = 50
ANALYZE_SCALE_FACTOR = 0.1
# autovacuum_naptime's default: the least time between two analyses of one table.
REANALYZE_AFTER_SECONDS = 60.0
# Autovacuum's own pace (autovacuum_vacuum_cost_delay and vacuum_cost_limit's defaults): a
# manual ANALYZE runs unthrottled, taking a core from the requests for its whole length.
_AT_AUTOVACUUM_PACE = "SET LOCAL vacuum_cost_delay = '2ms'; SET LOCAL vacuum_cost_limit = 200"
# Chatgate's own tables, and no other table of the schema (whose name this process did not choose).
CHATGATE_TABLES = sorted(metadata.tables)
# One process of one instance analyzes at a time (a session-level advisory lock; any fixed key).
LOCK_KEY = 0x43484154_53544154  # "CHATSTAT"

_STALE_TABLES = """
SELECT s.relname, format('%I', s.relname) AS quoted FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.relname = ANY($4::text[])
  AND s.n_mod_since_analyze > $1 + $2 * GREATEST(c.reltuples, 0)
  AND (s.last_analyze IS NULL OR s.last_analyze < now() - make_interval(secs => $3))
ORDER BY s.relname
"""

Connect = Callable[[], AbstractAsyncContextManager[Any]]


async def autovacuum_is_off(connection: Any) -> bool:
    return str(await connection.fetchval("SHOW autovacuum")) == "off"


async def analyze_stale_tables(connection: Any, reanalyze_after: float = REANALYZE_AFTER_SECONDS) -> list[str]:
    """ANALYZE the tables changed past autovacuum's rule since their last analyze; their names."""
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        return []  # another process is at it
    try:
        rows = await connection.fetch(
            _STALE_TABLES, ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR, reanalyze_after, CHATGATE_TABLES
        )
        for row in rows:
            async with connection.transaction():
                await connection.execute(_AT_AUTOVACUUM_PACE)
                await connection.execute(f"ANALYZE {row['quoted']}")
        return [row["relname"] for row in rows]
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def keep_statistics(connect: Connect) -> None:
    """Run for the life of the process; return at once when autovacuum is on."""
    checked_autovacuum = False
    while True:
        try:
            async with connect() as connection:
                if not checked_autovacuum:
                    if not await autovacuum_is_off(connection):
                        return
                    checked_autovacuum = True
                analyzed = await analyze_stale_tables(connection)
            if analyzed:
                log.debug("analyzed %s (autovacuum is off)", ", ".join(analyzed))
        except Exception:  # the database is away (the health check says so): try again next round
            log.debug("planner statistics: this round failed", exc_info=True)
        await asyncio.sleep(CHECK_SECONDS)
