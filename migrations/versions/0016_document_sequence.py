"""numbering series of issued documents (the 文号 of decision and clawback letters)

`document_sequence` holds the last number given per series and year; `core.documents.next_number` takes the next
one in one upsert (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), so concurrent letters get distinct numbers.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document_sequence",
        sa.Column("series", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series", "year"),
    )


def downgrade() -> None:
    op.drop_table("document_sequence")
