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
  fund accounts equal the resting buy orders' holds (`money.buy_hold_fen` of their remainders) plus the
  requested withdrawals;
- every trader's yuan, recomputed from its confirmed deposits and withdrawals and the trades it made (amount
  `price × quantity // 10**scale` plus or minus its fee), equals its fund account's posted balance; the fee
  account holds the sum of the fees; every trader's units equal its allocation plus buys minus sells.
It runs on an instrument of every kind in use, so at every scale (CEA and GEC 0, energy-use rights and
discharge permits 3), with quantities that are not whole display units, where amounts round.
- `TradingService.reconcile()` is empty (each hold matches its order, the book equals its journal's replay and
  the resting orders in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database, UnitOfWork
from core.errors import AppError
from core.figures import quantity_plain, yuan_plain
from core.identity import Role
from core.models import LedgerAccount
from registry.domain.instruments import KIND_RULES, Kind
from tests.conftest import BACKENDS, schema_database_url
from tests.trading.conftest import (
    KIND_ISSUES,
    MONDAY_10,
    ServiceWorld,
    ident,
    invariants,
    pending_totals,
    service_world,
)
from trading import schemas as ts
from trading.domain.money import buy_hold_fen
from trading.models import FundMovement, Market, Order, Trade

TICKS = st.integers(min_value=-6, max_value=6)
# Whole display units, then thousandths taken off for a scaled instrument (so 0.137 tce and 12.999 t occur).
QUANTITY = st.tuples(st.integers(min_value=1, max_value=400), st.integers(min_value=0, max_value=999))
UNITS_EACH = 2_000  # display units allocated to each trader
FUNDS_EACH_FEN = 2_000_000
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
        scale = {m.id: KIND_RULES[Kind(m.kind)].scale for m in (await uow.session.execute(select(Market))).scalars()}
        units = sum(o.quantity - o.filled_quantity - o.cancelled_quantity for o in orders if o.side == "sell")
        funds = sum(
            buy_hold_fen(
                o.hold_price_fen or 0,
                o.quantity - o.filled_quantity - o.cancelled_quantity,
                scale[o.market_id],
                o.hold_fee_bps,
            )
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


async def _money_recomputed(db: Database, scale: int) -> list[str]:
    """Each trader's yuan and units recomputed from movements and trades alone, against the ledger's balances."""

    async def work(uow: UnitOfWork) -> list[str]:
        ses = uow.session
        yuan: dict[int, int] = {}
        for mv in (await ses.execute(select(FundMovement).where(FundMovement.status == "confirmed"))).scalars():
            sign = 1 if mv.kind == "deposit" else -1
            yuan[mv.organisation_id] = yuan.get(mv.organisation_id, 0) + sign * mv.amount_fen
        units: dict[int, int] = {}
        fees = 0
        out: list[str] = []
        for tr in (await ses.execute(select(Trade))).scalars():
            amount = tr.price_fen * tr.quantity // 10**scale
            if tr.notional_fen != amount:
                out.append(f"trade {tr.id}: amount {tr.notional_fen} != {amount}")
            yuan[tr.buyer_organisation_id] = yuan.get(tr.buyer_organisation_id, 0) - amount - tr.buyer_fee_fen
            yuan[tr.seller_organisation_id] = yuan.get(tr.seller_organisation_id, 0) + amount - tr.seller_fee_fen
            units[tr.buyer_account_id] = units.get(tr.buyer_account_id, 0) + tr.quantity
            units[tr.seller_account_id] = units.get(tr.seller_account_id, 0) - tr.quantity
            fees += tr.buyer_fee_fen + tr.seller_fee_fen
        posted = {
            (a.owner_kind, a.owner_id, a.asset_id): a.credits_posted - a.debits_posted
            for a in (await ses.execute(select(LedgerAccount))).scalars()
        }
        by_owner = {(k[0], k[1]): v for k, v in posted.items()}
        for org, expected in yuan.items():
            if by_owner.get(("fund", org), 0) != expected:
                out.append(f"organisation {org}: fund {by_owner.get(('fund', org), 0)} != recomputed {expected}")
        if by_owner.get(("fee", 0), 0) != fees:
            out.append(f"fee account {by_owner.get(('fee', 0), 0)} != fees {fees}")
        allocated = UNITS_EACH * 10**scale
        for account_id, delta in units.items():
            if by_owner.get(("registry", account_id), allocated) != allocated + delta:
                out.append(f"account {account_id}: units != {allocated} + {delta}")
        return out

    return await db.read(work)


async def _check(sw: ServiceWorld, step: str) -> None:
    assert await invariants(sw.db) == [], step
    assert all(v == 0 for v in await _clearing_posted(sw.db)), step
    assert await pending_totals(sw.db, sw.instrument_id) == await _expected_holds(sw.db), step
    assert await sw.trading.reconcile() == [], step
    assert await _money_recomputed(sw.db, sw.scale) == [], step


def _next_session(at: dt.datetime) -> dt.datetime:
    day = at + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


async def _run(
    url: str, ops: list[tuple[Any, ...]], mode: str, fee_bps: int, stp: str = "cancel-taker", kind: str = "cea"
) -> dict[str, int]:
    clock = FixedClock(MONDAY_10)
    db = Database(url)
    outcomes: dict[str, int] = {}
    scale = KIND_RULES[Kind(kind)].scale
    per = 10**scale

    def qty_text(q: tuple[int, int]) -> str:
        whole, thousandths = q
        return quantity_plain(max(whole * per - (thousandths if scale else 0), 1), scale)

    try:
        sw = await service_world(
            db,
            clock,
            mode=mode,
            units=UNITS_EACH,
            funds_yuan=yuan_plain(FUNDS_EACH_FEN),
            fee_bps=fee_bps,
            stp=stp,
            kind=kind,
        )
        t = sw.trading
        movements: list[int] = []
        for n, op in enumerate(ops):
            name = op[0]
            try:
                if name == "place":
                    _, i, side, kind, ticks, qty = op
                    if mode == "listed":
                        kind = "limit"
                    price = None if kind == "market" else yuan_plain(5_000 + ticks * 25)
                    await t.place_order(
                        sw.traders[i],
                        ts.PlaceOrder(
                            instrument_id=sw.instrument_id,
                            account_id=sw.accounts[i],
                            side=side,
                            kind=kind,
                            price=price,
                            quantity=qty_text(qty),
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
                    wanted = max(qty[0] * per - (qty[1] if scale else 0), 1)
                    await t.place_order(
                        sw.traders[i],
                        ts.PlaceOrder(
                            instrument_id=sw.instrument_id,
                            account_id=sw.accounts[i],
                            side=side,
                            quantity=quantity_plain(min(wanted, remaining), scale),
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
                    await t.decide_fund_movement(sw.bank, mv.id, ts.FundDecision(decision="confirm"))
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
        outcomes["trades"] = await _trade_count(db)
    finally:
        await db.dispose()
    # The drawn operations are well formed: a refusal is a business rule (funds, T+1, band, self-trade), never
    # malformed input, which is what a settlement asking the ledger for more than its hold would raise.
    assert "invalid-input" not in outcomes, outcomes
    return outcomes


async def _trade_count(db: Database) -> int:
    async def work(uow: UnitOfWork) -> int:
        return len((await uow.session.execute(select(Trade.id))).all())

    return await db.read(work)


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
    fee_bps=st.sampled_from([0, 30, 7]),
)
@pytest.mark.parametrize("kind", sorted(KIND_ISSUES))
def test_units_and_yuan_are_conserved_and_holds_equal_open_orders(
    backend: str, kind: str, tmp_path: Path, ops: list[tuple[Any, ...]], mode: str, fee_bps: int
) -> None:
    asyncio.run(_run(schema_database_url(backend, tmp_path), ops, mode, fee_bps, kind=kind))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(KIND_ISSUES))
def test_a_long_crossing_session_keeps_every_promise(backend: str, kind: str, tmp_path: Path) -> None:
    """A fixed, busier sequence in continuous mode with fees and the cancel-maker self-trade policy: many partial
    fills, market and IOC orders, and resting orders cancelled when their owner's own order reaches them."""
    ops: list[tuple[Any, ...]] = []
    for k in range(24):
        side = "buy" if k % 2 else "sell"
        order_kind = ("limit", "limit", "market", "ioc")[k % 4] if k > 3 else "limit"
        ops.append(("place", k % 3, side, order_kind, (k * 5) % 9 - 4, (20 + (k * 37) % 180, (k * 131) % 1000)))
        if k % 7 == 6:
            ops.append(("cancel", k % 3, k))
    url = schema_database_url(backend, tmp_path)
    outcomes = asyncio.run(_run(url, ops, "continuous", 30, "cancel-maker", kind=kind))
    assert outcomes.get("place", 0) >= 16 and outcomes["trades"] >= 5, outcomes
