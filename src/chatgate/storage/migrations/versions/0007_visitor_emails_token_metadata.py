"""anonymous visitors may keep an email outside the email's uniqueness; names out of TypingMind metadata

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The user properties an external auth code's user object gives Chatgate's own fields (firstname, lastname):
# until this revision they were kept in metadata as well.
NAME_KEYS = ("firstname", "lastname", "first_name", "last_name")


def upgrade() -> None:
    # An email is unique among identified users only; visitors (Tiledesk signinAnonymously) may give one.
    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_end_users_project_id_email", type_="unique")
        batch_op.create_index(
            "uq_end_users_identified_email",
            ["project_id", "email"],
            unique=True,
            sqlite_where=sa.text("NOT anonymous"),
            postgresql_where=sa.text("NOT anonymous"),
        )

    # metadata holds what the token carried beyond the fields Chatgate reads: users created from a code
    # before this revision had their names there too.
    if op.get_bind().dialect.name == "postgresql":
        removed = " - ".join(f"'{key}'" for key in NAME_KEYS)
        listed = ", ".join(f"'{key}'" for key in NAME_KEYS)
        op.execute(
            f"UPDATE end_users SET metadata = (metadata::jsonb - {removed})::json"  # noqa: S608
            f" WHERE created_via = 'external_auth_code' AND metadata::jsonb ?| array[{listed}]"
        )
    else:
        paths = ", ".join(f"'$.{key}'" for key in NAME_KEYS)
        present = " OR ".join(f"json_type(metadata, '$.{key}') IS NOT NULL" for key in NAME_KEYS)
        op.execute(
            f"UPDATE end_users SET metadata = json_remove(metadata, {paths})"  # noqa: S608
            f" WHERE created_via = 'external_auth_code' AND ({present})"
        )


def downgrade() -> None:
    # Names stripped from metadata are not put back (they are in firstname and lastname). Visitors lose
    # their emails, which the restored constraint would count against identified users.
    op.execute("UPDATE end_users SET email = NULL WHERE anonymous")
    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.drop_index("uq_end_users_identified_email")
        batch_op.create_unique_constraint("uq_end_users_project_id_email", ["project_id", "email"])
