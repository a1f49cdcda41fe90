"""Which serials a buyer receives does not depend on how settlement moves them. When a resting sale is hit, its
collection sends the units' serials straight on to the buyer (`ledger.resolve_pending(serials_to=...)`) instead of
into clearing and out again; when a sale hits resting buys, the serials still pass through clearing. A world that
settles every trade through clearing (the shortcut turned off) must end with exactly the same serial blocks in
every account, also when the seller's holding is fragmented so that a trade takes the rest of one block and the
start of the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database, UnitOfWork
from core.models import LedgerAccount, SerialBlock
from registry import schemas as rs
from server.migrate import create_schema
from tests.trading.conftest import MONDAY_10, ServiceWorld, invariants, service_world
from trading import schemas as ts
from trading import settlement


async def _world(tmp: Path, name: str) -> ServiceWorld:
    url = f"sqlite+aiosqlite:///{tmp / name}"
    create_schema(url)
    sw = await service_world(Database(url), FixedClock(MONDAY_10), mode="continuous", traders=3, units=100)
    # Fragment the seller's holding: two small blocks below its first, with another trader's block between them.
    for who, quantity in ((0, "5"), (1, "4"), (0, "6")):
        await sw.registry.allocate_units(
            sw.regulator,
            rs.AllocateUnits(to_account_id=sw.accounts[who], instrument_id=sw.instrument_id, quantity=quantity),
            None,
        )
    return sw


async def _trade(sw: ServiceWorld) -> None:
    def order(trader: int, side: str, quantity: int) -> ts.PlaceOrder:
        return ts.PlaceOrder(
            instrument_id=sw.instrument_id,
            account_id=sw.accounts[trader],
            side=side,  # type: ignore[arg-type]
            price="50.00",
            quantity=str(quantity),
        )

    for trader, side, quantity in (
        (0, "sell", 15),  # rests
        (1, "buy", 7),  # hits it: the rest of the lowest block and part of the next, straight to the buyer
        (2, "buy", 5),
        (1, "buy", 6),  # takes the sale's last 3, rests 3
        (2, "buy", 4),  # rests
        (0, "sell", 20),  # hits both resting buys: through clearing, to two buyers; rests 13
        (1, "buy", 13),
    ):
        await sw.trading.place_order(sw.traders[trader], order(trader, side, quantity), None)


async def _blocks(sw: ServiceWorld) -> dict[int, list[tuple[int, int]]]:
    async def read(uow: UnitOfWork) -> dict[int, list[tuple[int, int]]]:
        rows = await uow.session.execute(
            select(LedgerAccount.owner_kind, LedgerAccount.owner_id, SerialBlock.serial_start, SerialBlock.serial_end)
            .join(LedgerAccount, LedgerAccount.id == SerialBlock.ledger_account_id)
            .order_by(SerialBlock.serial_start)
        )
        out: dict[int, list[tuple[int, int]]] = {}
        for kind, owner, start, end in rows:
            assert kind != "clearing", "clearing keeps no serials between units of work"
            merged = out.setdefault(owner, [])
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return out

    return await sw.db.read(read)


async def test_serials_arrive_as_if_every_trade_went_through_clearing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = await _world(tmp_path, "short.db")
    await _trade(short)

    real_collect, real_deliver = settlement.collect_and_rehold, settlement.deliver

    async def collect_into_clearing(*args: Any, **kwargs: Any) -> None:
        kwargs["serials_to"] = None
        await real_collect(*args, **kwargs)

    async def deliver_out_of_clearing(*args: Any, **kwargs: Any) -> None:
        kwargs["serials_delivered"] = False
        await real_deliver(*args, **kwargs)

    monkeypatch.setattr(settlement, "collect_and_rehold", collect_into_clearing)
    monkeypatch.setattr(settlement, "deliver", deliver_out_of_clearing)
    long = await _world(tmp_path, "long.db")
    await _trade(long)

    try:
        expected, got = await _blocks(long), await _blocks(short)
        assert got == expected
        buyers = [short.accounts[1], short.accounts[2]]
        assert all(len(got[b]) >= 2 for b in buyers)  # each received serials from more than one of the seller's blocks
        for sw in (short, long):
            assert await invariants(sw.db) == []
            assert await sw.trading.reconcile() == []
    finally:
        await short.db.dispose()
        await long.db.dispose()
