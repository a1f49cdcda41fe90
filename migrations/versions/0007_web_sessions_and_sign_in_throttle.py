"""browser sessions and sign-in throttling

`web_session` holds the SHA-256 of each signed-in browser's session token; `principal` counts consecutive wrong
passwords and the lock they set (core.identity.check_login).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("principal") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("locked_until", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True)
        )
    op.create_table(
        "web_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_web_session_principal_id"), "web_session", ["principal_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_session_principal_id"), table_name="web_session")
    op.drop_table("web_session")
    with op.batch_alter_table("principal") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")
