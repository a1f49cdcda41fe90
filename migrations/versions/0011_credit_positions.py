"""approved equipment-credit positions (the carry-forward history of each enterprise)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "incentives_credit_position"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.BigInteger(), nullable=False),
        sa.Column("enterprise_organisation_id", sa.Integer(), nullable=True),
        sa.Column("tax_year", sa.Integer(), nullable=False),
        sa.Column("determination_id", sa.Integer(), nullable=False),
        *(sa.Column(f"carry_age{age}_fen", sa.BigInteger(), nullable=False) for age in range(1, 6)),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("approved_by", sa.BigInteger(), nullable=False),
        sa.Column("approved_role", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("approved_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["determination_id"], ["incentives_determination.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("determination_id"),
    )
    op.create_index("ix_incentives_credit_position_enterprise_year", TABLE, ["enterprise_id", "tax_year", "id"],
                    unique=False)
    op.create_index(op.f("ix_incentives_credit_position_enterprise_organisation_id"), TABLE,
                    ["enterprise_organisation_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_incentives_credit_position_enterprise_organisation_id"), table_name=TABLE)
    op.drop_index("ix_incentives_credit_position_enterprise_year", table_name=TABLE)
    op.drop_table(TABLE)
