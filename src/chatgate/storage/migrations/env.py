"""Alembic environment: the connection comes from ``chatgate.storage.migrate``."""

from __future__ import annotations

from alembic import context

from chatgate.storage.engine import make_engine
from chatgate.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Invoked by the alembic CLI (e.g. ``alembic revision --autogenerate``).
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url (alembic -x) or run migrations through `chatgate migrate`")
    engine = make_engine(str(url))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
