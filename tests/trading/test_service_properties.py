"""Property test of the trading service: after any sequence of orders, picks, cancels, deposits, withdrawals and
day closes, units and yuan are conserved, the clearing accounts are flat, and the holds equal the open orders.

Each hypothesis example builds a fresh database (SQLite; PostgreSQL too when GREENRIGHTS_TEST_DATABASE_URL is
set) with three traders, then runs the drawn operations through `TradingService`. Refusals (insufficient funds,
T+1, off-band prices, self-trades, ...) are expected outcomes; anything but an `AppError` fails the test.
After every operation:
- `core.ledger.check_invariants()` is empty (per asset, debits equal credits; no negative available; balances
  equal their transfers; serial blocks cover holdings);
- the clearing accounts hold nothing posted: every settlement paid out all it collected;
- the units held on the instrument equal the sum of the resting sell orders' remainders, and the yuan held in
  fund accounts equal the resting buy orders' remainders × their unit cost plus the requested withdrawals;
- `TradingService.reconcile()` is empty (each hold matches its order, the book equals its journal's replay and
  the resting orders in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database, UnitOfWork
from core.errors import AppError
from core.identity import Role
from core.models import LedgerAccount
from server.migrate import create_schema
from tests.conftest import BACKENDS, fresh_database_url
from tests.trading.conftest import MONDAY_10, ServiceWorld, ident, invariants, pending_totals, service_world
from trading import schemas as ts
from trading.models import FundMovement, Order

TICKS = st.integers(min_value=-6, max_value=6)
QUANTITY = st.integers(min_value=1, max_value=400)
TRADER = st.integers(min_value=0, max_value=2)

PLACE = st.tuples(
    st.just("place"),
    TRADER,
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["limit", "limit", "limit", "market", "ioc", "fok"]),
    TICKS,
    QUANTITY,
)
PICK = st.tuples(st.just("pick"), TRADER, st.integers(min_value=0, max_value=9), QUANTITY)
BRANCHES = {
    "place": PLACE,
    "pick": PICK,
    "cancel": st.tuples(st.just("cancel"), TRADER, st.integers(min_value=0, max_value=9)),
    "deposit": st.tuples(st.just("deposit"), TRADER, st.integers(min_value=1, max_value=50_000)),
    "withdraw": st.tuples(st.just("withdraw"), TRADER, st.integers(min_value=1, max_value=60_000), st.booleans()),
    "next_day": st.tuples(st.just("next_day")),
}
# Mostly orders and picks; the repeats in the list are the weights.
OPS = st.sampled_from(["place"] * 10 + ["pick"] * 5 + ["cancel"] * 2 + ["deposit", "withdraw", "next_day"]).flatmap(
    lambda name: BRANCHES[name]
)


async def _resting(db: Database) -> list[Order]:
    async def work(uow: UnitOfWork) -> list[Order]:
        return list((await uow.session.execute(select(Order).where(Order.status == "resting"))).scalars())

    return await db.read(work)


async def _expected_holds(db: Database) -> tuple[int, int]:
    async def work(uow: UnitOfWork) -> tuple[int, int]:
        orders = list((await uow.session.execute(select(Order).where(Order.status == "resting"))).scalars())
        units = sum(o.quantity - o.filled_quantity - o.cancelled_quantity for o in orders if o.side == "sell")
        funds = sum(
            (o.quantity - o.filled_quantity - o.cancelled_quantity) * (o.unit_cost_fen or 0)
            for o in orders
            if o.side == "buy"
        )
        funds += sum(
            (
                await uow.session.execute(
                    select(FundMovement.amount_fen).where(
                        FundMovement.kind == "withdrawal", FundMovement.status == "requested"
                    )
                )
            ).scalars()
        )
        return units, funds

    return await db.read(work)


async def _clearing_posted(db: Database) -> list[int]:
    async def work(uow: UnitOfWork) -> list[int]:
        rows = await uow.session.execute(select(LedgerAccount).where(LedgerAccount.owner_kind == "clearing"))
        return [a.credits_posted - a.debits_posted for a in rows.scalars()]

    return await db.read(work)


async def _check(sw: ServiceWorld, step: str) -> None:
    assert await invariants(sw.db) == [], step
    assert all(v == 0 for v in await _clearing_posted(sw.db)), step
    assert await pending_totals(sw.db, sw.instrument_id) == await _expected_holds(sw.db), step
    assert await sw.trading.reconcile() == [], step


def _next_session(at: dt.datetime) -> dt.datetime:
    day = at + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


_TEMPLATES: dict[str, Path] = {}


def _fresh_url(backend: str, tmp_path: Path) -> str:
    """A fresh database per example. SQLite copies an empty schema built once (create_all is the slow part)."""
    if backend != "sqlite":
        url = fresh_database_url(backend, tmp_path)
        create_schema(url)
        return url
    template = _TEMPLATES.get("sqlite")
    if template is None:
        template = Path(tempfile.mkdtemp()) / "template.db"
        create_schema(f"sqlite+aiosqlite:///{template}")
        _TEMPLATES["sqlite"] = template
    target = tmp_path / f"p-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def _run(
    url: str, ops: list[tuple[Any, ...]], mode: str, fee_bps: int, stp: str = "cancel-taker"
) -> dict[str, int]:
    clock = FixedClock(MONDAY_10)
    db = Database(url)
    outcomes: dict[str, int] = {}
    try:
        sw = await service_world(db, clock, mode=mode, funds_yuan="20000.00", fee_bps=fee_bps, stp=stp)
        t = sw.trading
        movements: list[int] = []
        for n, op in enumerate(ops):
            name = op[0]
            try:
                if name == "place":
                    _, i, side, kind, ticks, qty = op
                    if mode == "listed":
                        kind = "limit"
                    price = None if kind == "market" else f"{50 + ticks * 0.25:.2f}"
                    await t.place_order(
                        sw.traders[i],
                        ts.PlaceOrder(
                            instrument_id=sw.instrument_id,
                            account_id=sw.accounts[i],
                            side=side,
                            kind=kind,
                            price=price,
                            quantity=str(qty),
                        ),
                        None,
                    )
                elif name == "pick":
                    _, i, index, qty = op
                    resting = await _resting(db)
                    if mode != "listed" or not resting:
                        continue
                    listing = resting[index % len(resting)]
                    side = "buy" if listing.side == "sell" else "sell"
                    remaining = listing.quantity - listing.filled_quantity - listing.cancelled_quantity
                    await t.place_order(
                        sw.traders[i],
                        ts.PlaceOrder(
                            instrument_id=sw.instrument_id,
                            account_id=sw.accounts[i],
                            side=side,
                            quantity=str(min(qty, remaining)),
                            listing_id=listing.id,
                        ),
                        None,
                    )
                elif name == "cancel":
                    _, i, index = op
                    mine = [o for o in await _resting(db) if o.organisation_id == sw.traders[i].organisation_id]
                    if not mine:
                        continue
                    await t.cancel_order(sw.traders[i], mine[index % len(mine)].id or 0)
                elif name == "deposit":
                    _, i, yuan = op
                    mv = await t.request_fund_movement(sw.traders[i], "deposit", ts.FundRequest(amount=str(yuan)), None)
                    await t.decide_fund_movement(sw.bank, mv.id, ts.FundDecision())
                elif name == "withdraw":
                    _, i, yuan, decide = op
                    mv = await t.request_fund_movement(
                        sw.traders[i], "withdrawal", ts.FundRequest(amount=str(yuan)), None
                    )
                    movements.append(mv.id)
                    if decide:
                        await t.decide_fund_movement(sw.bank, mv.id, ts.FundDecision(decision="confirm"))
                elif name == "next_day":
                    await t.close_trading_day()
                    clock.set(_next_session(clock.now()))
                outcomes[name] = outcomes.get(name, 0) + 1
            except AppError as exc:
                outcomes[exc.problem.slug] = outcomes.get(exc.problem.slug, 0) + 1
            await _check(sw, f"after step {n}: {op}")
        # Whatever is still open expires at the close, and every hold is released exactly once.
        await t.close_trading_day()
        for mv_id in movements:
            with contextlib.suppress(AppError):
                await t.decide_fund_movement(sw.bank, mv_id, ts.FundDecision(decision="reject"))
        await _check(sw, "after the close")
        assert await pending_totals(db, sw.instrument_id) == (0, 0)
        regulator = ident(Role.AUDITOR, sw.regulator.organisation_id)
        page = await t.list_orders(regulator, instrument_id=None, status="resting", limit=10, before_id=None)
        assert page.items == []
    finally:
        await db.dispose()
    return outcomes


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    ops=st.lists(OPS, min_size=8, max_size=24),
    mode=st.sampled_from(["listed", "continuous"]),
    fee_bps=st.sampled_from([0, 30]),
)
def test_units_and_yuan_are_conserved_and_holds_equal_open_orders(
    backend: str, tmp_path: Path, ops: list[tuple[Any, ...]], mode: str, fee_bps: int
) -> None:
    asyncio.run(_run(_fresh_url(backend, tmp_path), ops, mode, fee_bps))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_crossing_session_keeps_every_promise(backend: str, tmp_path: Path) -> None:
    """A fixed, busier sequence in continuous mode with fees and the cancel-maker self-trade policy: many partial
    fills, market and IOC orders, and resting orders cancelled when their owner's own order reaches them."""
    ops: list[tuple[Any, ...]] = []
    for k in range(24):
        side = "buy" if k % 2 else "sell"
        kind = ("limit", "limit", "market", "ioc")[k % 4] if k > 3 else "limit"
        ops.append(("place", k % 3, side, kind, (k * 5) % 9 - 4, 20 + (k * 37) % 180))
        if k % 7 == 6:
            ops.append(("cancel", k % 3, k))
    outcomes = asyncio.run(_run(_fresh_url(backend, tmp_path), ops, "continuous", 30, "cancel-maker"))
    assert outcomes.get("place", 0) >= 16
