"""seat counters split into shards, so first logins do not queue on one row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SHARDS = 16


def upgrade() -> None:
    # Today's count stays on shard 0; the other shards start empty.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_seat_counters", "seat_counters", type_="primary")
        op.add_column("seat_counters", sa.Column("shard", sa.Integer(), nullable=False, server_default="0"))
        op.create_primary_key("pk_seat_counters", "seat_counters", ["project_id", "shard"])
    else:
        op.rename_table("seat_counters", "seat_counters_0002")
        op.create_table(
            "seat_counters",
            sa.Column("project_id", sa.String(length=24), nullable=False),
            sa.Column("shard", sa.Integer(), nullable=False),
            sa.Column("used", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["project_id"], ["projects.id"], name=op.f("fk_seat_counters_project_id_projects"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("project_id", "shard", name=op.f("pk_seat_counters")),
        )
        op.execute(
            "INSERT INTO seat_counters (project_id, shard, used) SELECT project_id, 0, used FROM seat_counters_0002"
        )
        op.drop_table("seat_counters_0002")
    for shard in range(1, SHARDS):
        op.execute(
            f"INSERT INTO seat_counters (project_id, shard, used) SELECT project_id, {shard}, 0"  # noqa: S608
            " FROM seat_counters WHERE shard = 0"
        )


def downgrade() -> None:
    raise NotImplementedError("seat counter shards cannot be merged back automatically")
