"""The trade and registry-transaction rows of a batch, kept in memory and written at its end (SQLite).

A batch of order commands that keeps its balances and transfer rows in memory (`core.balances`) keeps its trades
and their registry transactions too: each trade gets its id at once, from ids taken ahead
(`core.prepared.reserve_ids`), and the batch writes each kind of row in one executemany before its commit. One
INSERT of many rows into a table costs SQLite a fraction of as many INSERTs of one row interleaved with every other
table's (measured in place: 5 µs a transfer row against 24).

Until then the rows exist only here, so what reads them in the batch asks here too: a sale's T+1 figure adds the
units bought today in the batch (`bought`). A command of the batch that rolls back drops the rows it staged
(`mark`, `restore`). Without balances in memory (PostgreSQL, a batch of one, the other venues) nothing is staged
and the rows are written at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import balances
from core.prepared import Prepared, reserve_ids
from registry.models import RegistryTransaction
from trading.models import Trade

_KEY = "trading.staged_rows"
_TRADES = Trade.__table__  # type: ignore[attr-defined]
_INSERT_TRADES = Prepared(insert(_TRADES))
# Every trade's delivery of units is also a registry transaction (code "trade", `trading.settlement.deliver`, staged or
# not), so an account's statement and `listAccountTransactions` list the units it bought and sold beside its
# allocations and transfers, and opening balance + listed movements = closing balance.
INSERT_REGISTRY_TX = Prepared(insert(RegistryTransaction.__table__))  # type: ignore[attr-defined]
_ID_BLOCK = 64

Mark = tuple[int, int]


@dataclass
class Rows:
    trades: list[dict[str, Any]] = field(default_factory=list)
    registry_txs: list[dict[str, Any]] = field(default_factory=list)
    trade_ids: list[int] = field(default_factory=list)  # ids taken ahead, the next last

    async def trade(self, session: AsyncSession, values: dict[str, Any]) -> int:
        """Keep a trade row (every column but `id`); its id."""
        if not self.trade_ids:
            self.trade_ids = (await reserve_ids(session, _TRADES, _ID_BLOCK))[::-1]
        trade_id = self.trade_ids.pop()
        self.trades.append({"id": trade_id, **values})
        return trade_id

    def bought(self, registry_account_id: int, instrument_id: int, day: dt.date) -> int:
        """Units this account bought of this instrument on `day` in the trades staged so far."""
        return sum(
            t["quantity"]
            for t in self.trades
            if t["buyer_account_id"] == registry_account_id
            and t["instrument_id"] == instrument_id
            and t["trade_date"] == day
        )

    def mark(self) -> Mark:
        return len(self.trades), len(self.registry_txs)

    def restore(self, mark: Mark) -> None:
        del self.trades[mark[0] :], self.registry_txs[mark[1] :]

    async def flush(self, session: AsyncSession) -> None:
        await _INSERT_TRADES.many(session, self.trades)
        await INSERT_REGISTRY_TX.many(session, self.registry_txs)
        self.trades.clear()
        self.registry_txs.clear()


def rows(session: AsyncSession) -> Rows | None:
    """The batch's staged rows, when its balances are in memory (`core.balances`); else None: write at once."""
    if balances.deferred(session) is None:
        return None
    found: Rows | None = session.sync_session.info.get(_KEY)
    if found is None:
        found = session.sync_session.info[_KEY] = Rows()
    return found


async def flush(session: AsyncSession) -> None:
    found: Rows | None = session.sync_session.info.get(_KEY)
    if found is not None:
        await found.flush(session)
