"""audit entries are appended without chain fields and linked after commit

Writers insert an entry with a surrogate `id` only; the linker (core/audit.py `link_pending`) gives it `seq`,
`prev_hash` and `hash` after it committed, so the audit head is no longer a row every writer updates. Existing
entries keep their seq and hashes (their id is their seq): the chain verifies as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'audit_entry_new',
        sa.Column('id', _ID, nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=True),
        sa.Column('at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('seq'),
    )
    op.execute(
        "INSERT INTO audit_entry_new (id, seq, at, actor, action, entity, entity_id, data, prev_hash, hash) "
        "SELECT seq, seq, at, actor, action, entity, entity_id, data, prev_hash, hash FROM audit_entry"
    )
    op.drop_index('ix_audit_entry_entity_id', table_name='audit_entry')
    op.drop_table('audit_entry')
    op.rename_table('audit_entry_new', 'audit_entry')
    op.create_index(op.f('ix_audit_entry_entity_id'), 'audit_entry', ['entity_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The copied ids came from seq: the sequence behind `id` must start after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_entry', 'id'), COALESCE((SELECT MAX(id) FROM audit_entry), 0) + 1, false)"
        )


def downgrade() -> None:
    raise NotImplementedError("the audit log is never rewritten backwards")
