"""documents the registry issues, for public verification

`issued_document` keeps each statement and compliance report's record and its verification code
(core.documents), so `/verify/{code}` answers for them as it does for the finance bureau's letters.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("subject_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("subject_uscc", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
        sa.Column("issued_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("issued_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_issued_document_kind_ref", "issued_document", ["kind", "ref", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_issued_document_kind_ref", table_name="issued_document")
    op.drop_table("issued_document")
