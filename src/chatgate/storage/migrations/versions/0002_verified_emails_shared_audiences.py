"""verified emails, disabled accounts, audiences shared between projects

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    # Only email sign-ups typed their email; every other way in carried a signed one.
    op.execute("UPDATE end_users SET email_verified = false WHERE created_via = 'email'")

    # The primary key becomes (audience, project_id): an audience may name several projects.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_project_audiences", "project_audiences", type_="primary")
        op.create_primary_key("pk_project_audiences", "project_audiences", ["audience", "project_id"])
        return
    with op.batch_alter_table("project_audiences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_audiences_project_id"))
    op.rename_table("project_audiences", "project_audiences_0001")
    op.create_table(
        "project_audiences",
        sa.Column("audience", sa.String(length=512), nullable=False),
        sa.Column("project_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_audiences_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("audience", "project_id", name=op.f("pk_project_audiences")),
    )
    op.execute(
        "INSERT INTO project_audiences (audience, project_id) SELECT audience, project_id FROM project_audiences_0001"
    )
    op.drop_table("project_audiences_0001")
    with op.batch_alter_table("project_audiences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_audiences_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("email_verified")
