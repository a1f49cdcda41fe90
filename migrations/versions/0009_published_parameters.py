"""published parameters: values and catalogue editions published in the system on top of the shipped YAML

`incentives_parameter_publication` holds each published value with its validity, citation and the two people
who published and confirmed it; the parameter lookup reads the confirmed ones as entries known from the day they
were confirmed. (0008 was taken by the surveillance alerts, so this revision follows it.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "incentives_parameter_publication"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("citation_document", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("citation_article", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("official", sa.Boolean(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("source_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("published_by", sa.BigInteger(), nullable=False),
        sa.Column("published_role", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("organisation_id", sa.BigInteger(), nullable=False),
        sa.Column("published_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("decision_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("known_from", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_incentives_parameter_publication_name"), TABLE, ["name"], unique=False)
    op.create_index(op.f("ix_incentives_parameter_publication_status"), TABLE, ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_incentives_parameter_publication_status"), table_name=TABLE)
    op.drop_index(op.f("ix_incentives_parameter_publication_name"), table_name=TABLE)
    op.drop_table(TABLE)
