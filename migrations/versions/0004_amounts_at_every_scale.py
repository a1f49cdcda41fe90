"""amounts at every scale: trade notional, book scale, buy-hold price and fee

Prices are per display unit and quantities in base units, so a trade's amount is
`price_fen × quantity // 10**scale` (`trading.domain.money`). Trades store the amount they moved, books the scale
they were opened with (replay builds the same book), and buy orders the price and fee their hold was computed
at, instead of a per-unit cost that cannot be right for a scaled instrument.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kinds held in thousandths of their display unit (registry/domain/instruments.py: energy-use kgce of tce,
# discharge kg of t). Copied here: a migration must not change when the code does.
_SCALED_KINDS = "('energy_use', 'discharge')"


def upgrade() -> None:
    with op.batch_alter_table('trading_book') as batch:
        batch.add_column(sa.Column('scale', sa.Integer(), nullable=False, server_default='0'))
    op.execute(
        "UPDATE trading_book SET scale = 3 WHERE market_id IN "
        f"(SELECT id FROM trading_market WHERE kind IN {_SCALED_KINDS})"
    )
    with op.batch_alter_table('trading_order') as batch:
        batch.alter_column('unit_cost_fen', new_column_name='hold_price_fen')
        batch.add_column(sa.Column('hold_fee_bps', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('trading_trade') as batch:
        batch.add_column(sa.Column('notional_fen', sa.BigInteger(), nullable=False, server_default='0'))
    op.execute(
        "UPDATE trading_trade SET notional_fen = CASE WHEN market_id IN "
        f"(SELECT id FROM trading_market WHERE kind IN {_SCALED_KINDS}) "
        "THEN price_fen * quantity / 1000 ELSE price_fen * quantity END"
    )


def downgrade() -> None:
    with op.batch_alter_table('trading_trade') as batch:
        batch.drop_column('notional_fen')
    with op.batch_alter_table('trading_order') as batch:
        batch.drop_column('hold_fee_bps')
        batch.alter_column('hold_price_fen', new_column_name='unit_cost_fen')
    with op.batch_alter_table('trading_book') as batch:
        batch.drop_column('scale')
