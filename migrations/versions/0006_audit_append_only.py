"""audit rows are append-only in the database

Triggers refuse DELETE on audit entries and the head, an UPDATE of an entry other than the linker's one filling of
its chain fields (seq, prev_hash, hash from NULL, content unchanged), and moving the head backwards. Someone with
the right to drop triggers can still rewrite the table: the signed checkpoints (core/audit.py) catch that.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from core.audit import APPEND_ONLY_POSTGRES, APPEND_ONLY_SQLITE

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in APPEND_ONLY_POSTGRES if op.get_bind().dialect.name == "postgresql" else APPEND_ONLY_SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_head_append_only ON audit_head")
        op.execute("DROP TRIGGER audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION audit_head_append_only()")
        op.execute("DROP FUNCTION audit_entry_append_only()")
    else:
        for name in (
            "audit_entry_no_delete",
            "audit_entry_link_only",
            "audit_head_no_delete",
            "audit_head_forward_only",
        ):
            op.execute(f"DROP TRIGGER {name}")
