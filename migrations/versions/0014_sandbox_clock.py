"""the sandbox mark and its simulated clock

`sandbox_clock` holds one row in a database created empty with `greenrights db upgrade --sandbox`: the mark, and
the offset (microseconds, only growing) that the sandbox clock adds to system time (core/sandbox.py). A database
without the row is production and refuses every clock move.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("marked_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("offset_us", sa.BigInteger(), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("moved_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_sandbox_clock_one_row"),
        sa.CheckConstraint("offset_us >= 0", name="ck_sandbox_clock_forward"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_clock")
