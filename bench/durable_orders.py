"""Durable order throughput: orders per second through `TradingService.place_order`, end to end.

Each order is one unit of work: the hold on units or funds, the matcher, the journal row under the book's next
sequence number, DVP settlement of any trade through clearing (ledger transfers, serial blocks), the order and
trade rows, the audit chain entry, and the commit (SQLite: WAL, `synchronous=FULL`). The stream alternates a
resting sell and a buy that crosses it, so every second order trades. `bench/matching.py` prints the result as
`durable_orders_per_s_sqlite=<n>` beside the in-memory matcher's rate.

Usage: `python bench/durable_orders.py [URL] [--orders N]` (default: a temporary SQLite file, 600 orders).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import core.models  # noqa: F401 - the tables must be known to SQLModel.metadata
import registry.models  # noqa: F401
import trading.models  # noqa: F401
from core.audit import make_flusher
from core.clock import FixedClock
from core.db import Database, UnitOfWork, sync_url
from core.identity import Identity, Role, create_organisation
from registry import schemas as rs
from registry.service import RegistryService
from trading import schemas as ts
from trading.service import TradingService

# Monday 2 March 2026, 10:00 Asia/Shanghai: a working day, inside the morning session.
SESSION = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
LOT = 10


def _uscc(n: int) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    body = f"91360100{n:09d}"[:17]
    total = sum(alphabet.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + alphabet[(31 - total % 31) % 31]


def _create_tables(url: str) -> None:
    """Every table imported so far (the kernel's, the registry's, the trading context's) and the audit chain's
    head row. The run needs no other context, so it does without the server's `create_schema` (which imports
    every context; this module was written inside `trading/`, where the layers forbid that import)."""
    engine = create_engine(sync_url(url))
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 0:
            conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    engine.dispose()


async def _setup(db: Database, clock: FixedClock, orders: int) -> tuple[TradingService, list[Identity], list[int], int]:
    registry = RegistryService(db, clock)
    await registry.bootstrap()
    trading = TradingService(db, clock, registry)

    async def orgs(uow: UnitOfWork) -> tuple[int, int]:
        reg = await create_organisation(uow.session, "江西省生态环境厅", "regulator", clock.now())
        bank = await create_organisation(uow.session, "结算银行", "bank", clock.now())
        return reg.id or 0, bank.id or 0

    reg_org, bank_org = await db.run(orgs)
    reg = Identity(1, reg_org, Role.REGULATOR, "bench")
    reg2 = Identity(2, reg_org, Role.REGULATOR, "bench")
    bank = Identity(3, bank_org, Role.BANK, "bench")
    units = orders * LOT
    await registry.open_account(reg, rs.OpenAccount(type="allocation"))
    tx = await registry.issue_units(
        reg, rs.IssueUnits(kind="cea", scheme="national", vintage=2025, quantity=str(units)), None
    )
    await registry.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
    await trading.create_market(
        reg, ts.CreateMarket(instrument_id=tx.instrument_id, mode="continuous", reference_price="50.00"), None
    )
    traders: list[Identity] = []
    accounts: list[int] = []
    for i in range(2):
        ent = await registry.create_enterprise(
            reg, rs.CreateEnterprise(uscc=_uscc(900_000 + i), name=f"基准企业{i}", city="南昌", industry_code="D4411")
        )
        acc = await registry.open_account(reg, rs.OpenAccount(type="holding", enterprise_id=ent.id))
        await registry.allocate_units(
            reg, rs.AllocateUnits(to_account_id=acc.id, instrument_id=tx.instrument_id, quantity=str(units // 2)), None
        )
        who = Identity(10 + i, ent.organisation_id, Role.EMITTER, "bench")
        movement = await trading.request_fund_movement(
            who, "deposit", ts.FundRequest(amount=str(orders * LOT * 60)), None
        )
        await trading.decide_fund_movement(bank, movement.id, ts.FundDecision())
        traders.append(who)
        accounts.append(acc.id)
    return trading, traders, accounts, tx.instrument_id


async def durable_orders_per_s(url: str, orders: int = 600) -> float:
    """Orders journalled and settled per second on `url` (a fresh database), for a crossing stream."""
    _create_tables(url)
    clock = FixedClock(SESSION)
    db = Database(url)
    db.audit_flusher = make_flusher(clock)
    try:
        trading, traders, accounts, instrument_id = await _setup(db, clock, orders)
        stream = [
            (
                traders[k % 2],
                ts.PlaceOrder(
                    instrument_id=instrument_id,
                    account_id=accounts[k % 2],
                    side="sell" if k % 2 == 0 else "buy",
                    price="50.00",
                    quantity=str(LOT),
                ),
            )
            for k in range(orders)
        ]
        started = time.perf_counter()
        for who, order in stream:
            await trading.place_order(who, order, None)
        elapsed = time.perf_counter() - started
        problems = await trading.reconcile()
        if problems:
            raise AssertionError(f"the durable run left inconsistencies: {problems[:3]}")
        return orders / elapsed
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=None)
    parser.add_argument("--orders", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite+aiosqlite:///{Path(tmp) / 'durable.db'}"
        rate = asyncio.run(durable_orders_per_s(url, args.orders))
    print(f"durable_orders_per_s={rate:.0f}")


if __name__ == "__main__":
    main()
