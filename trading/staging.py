"""The order, trade and registry-transaction rows of a batch, kept in memory and written at its end.

A batch of order commands that keeps its balances and transfer rows in memory (`core.balances`) keeps its new
orders, its trades and their registry transactions too: each row has its id at once, from ids taken ahead
(`core.prepared`), and the batch writes each kind of row in one executemany before its commit. One
INSERT of many rows into a table costs SQLite a fraction of as many INSERTs of one row interleaved with every other
table's (measured in place: 5 µs a transfer row against 24).

Until then the rows exist only here, so what reads them in the batch asks here too:
- a sale's T+1 figure adds the units bought today in the batch (`bought`);
- an order placed earlier in the batch is found here as a maker (`order`) or by its request key (`order_with_key`),
  and what a later command changes on it is kept here too (`put_order`): its row is written once, as it stands
  at the commit;
- so is what a command changes on an order already in the table (a maker's fill and re-hold, a cancel): written
  as an UPDATE at the end, after the transfers its hold names, and found here until then by the same look-ups.
A command of the batch that rolls back drops the rows it staged and undoes its changes to staged orders (`mark`,
`restore`). Without balances in memory (a batch of one, the other venues) nothing is staged and the rows are
written at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import balances
from core.prepared import IdsAhead, Prepared
from registry.models import RegistryTransaction
from trading.models import Order, Trade

_KEY = "trading.staged_rows"
_TRADES = Trade.__table__  # type: ignore[attr-defined]
_INSERT_TRADES = Prepared(insert(_TRADES))
_ORDERS = Order.__table__  # type: ignore[attr-defined]
ORDER_COLUMNS = tuple(c.key for c in _ORDERS.columns)
_ORDER_FIELDS = attrgetter(*ORDER_COLUMNS)
INSERT_ORDER = Prepared(insert(_ORDERS))
_ORDER_BY_ID = Prepared(select(*_ORDERS.c).where(_ORDERS.c.id == bindparam("order_id")))
# What a command may change on an order already in the table (a maker's fills, holds, a cancel).
_ORDER_CHANGES = (
    "filled_quantity",
    "cancelled_quantity",
    "status",
    "cancel_reason",
    "hold_transfer_id",
    "held_amount",
    "hold_count",
    "journal_seq",
    "updated_at",
)
_UPDATE_ORDER = Prepared(
    update(_ORDERS).where(_ORDERS.c.id == bindparam("order_id")).values({n: bindparam(n) for n in _ORDER_CHANGES})
)
# Every trade's delivery of units is also a registry transaction (code "trade", `trading.settlement.deliver`, staged or
# not), so an account's statement and `listAccountTransactions` list the units it bought and sold beside its
# allocations and transfers, and opening balance + listed movements = closing balance.
INSERT_REGISTRY_TX = Prepared(insert(RegistryTransaction.__table__))  # type: ignore[attr-defined]

Mark = tuple[int, int, int]


def order_values(order: Any) -> dict[str, Any]:
    """An order's row as a dict of its columns (id included)."""
    return dict(zip(ORDER_COLUMNS, _ORDER_FIELDS(order), strict=True))


async def update_orders(session: AsyncSession, orders: list[dict[str, Any]]) -> None:
    """Write the changes to these orders' rows (`order_values`): one UPDATE, one parameter set per order."""
    await _UPDATE_ORDER.many(session, [{"order_id": o["id"], **{n: o[n] for n in _ORDER_CHANGES}} for o in orders])


@dataclass
class Rows:
    trades: list[dict[str, Any]] = field(default_factory=list)
    registry_txs: list[dict[str, Any]] = field(default_factory=list)
    trade_ids: IdsAhead = field(default_factory=lambda: IdsAhead(_TRADES))
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)  # new orders' rows by id, as they stand now
    # Orders already in the table that a command of the batch changed, by id, as they stand now (every column).
    changed: dict[int, dict[str, Any]] = field(default_factory=dict)
    # What each `put_order` replaced (None: nothing), in `orders` (True) or `changed` (False), so that a command
    # rolled back undoes its changes.
    order_undo: list[tuple[bool, int, dict[str, Any] | None]] = field(default_factory=list)
    # A sale's figures as the table holds them (available, bought today), by (ledger account, registry account,
    # instrument, day): `trading.settlement.check_sellable` reads them once per batch.
    sellable: dict[tuple[int, int, int, dt.date], Any] = field(default_factory=dict)

    def put_order(self, values: dict[str, Any], *, new: bool = False) -> None:
        """Keep a new order's row (`new`), or an order's row as a command changed it (every column, `id` included):
        one placed in the batch stays a new row, one from the table is written as an UPDATE."""
        order_id = values["id"]
        into = new or order_id in self.orders
        rows = self.orders if into else self.changed
        self.order_undo.append((into, order_id, rows.get(order_id)))
        rows[order_id] = values

    def order(self, order_id: int) -> dict[str, Any] | None:
        """An order's row as the batch has it (a copy: change it through `put_order`), or None when the batch has
        not placed or changed it."""
        found = self.orders.get(order_id) or self.changed.get(order_id)
        return None if found is None else dict(found)

    def order_with_key(self, request_key: str) -> dict[str, Any] | None:
        """The order placed with this request key, as the batch has it (placed or changed in it: at most a few dozen
        each), or None."""
        for rows in (self.orders, self.changed):
            for values in rows.values():
                if values["request_key"] == request_key:
                    return dict(values)
        return None

    async def trade(self, session: AsyncSession, values: dict[str, Any]) -> int:
        """Keep a trade row (every column but `id`); its id."""
        trade_id = await self.trade_ids.next(session)
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
        return len(self.trades), len(self.registry_txs), len(self.order_undo)

    def restore(self, mark: Mark) -> None:
        del self.trades[mark[0] :], self.registry_txs[mark[1] :]
        while len(self.order_undo) > mark[2]:
            into, order_id, prior = self.order_undo.pop()
            rows = self.orders if into else self.changed
            if prior is None:
                del rows[order_id]
            else:
                rows[order_id] = prior

    async def flush(self, session: AsyncSession) -> None:
        """Write the rows (after the batch's transfers, which the orders' holds name)."""
        await INSERT_ORDER.many(session, list(self.orders.values()))
        await update_orders(session, list(self.changed.values()))
        self.orders.clear()
        self.changed.clear()
        self.order_undo.clear()
        await _INSERT_TRADES.many(session, self.trades)
        await INSERT_REGISTRY_TX.many(session, self.registry_txs)
        self.trades.clear()
        self.registry_txs.clear()


async def order_row(session: AsyncSession, order_id: int) -> dict[str, Any] | None:
    """An order's row as the table has it (a plain dict), or None."""
    rows = await _ORDER_BY_ID.execute(session, {"order_id": order_id})
    return rows[0]._asdict() if rows else None


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
