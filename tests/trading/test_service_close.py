"""The daily close: the scheduler's `market_close` job sets each market's close to the VWAP of the day's listed and
continuous trades (block trades and auctions excluded), expires open orders with their holds, and runs once per
day however often it fires; a day the scheduler missed is closed before the next day's book opens; compliance
reads the month's average price from the same trades."""

from __future__ import annotations

import datetime as dt

from registry.compliance.service import market_price_fen
from scheduler.jobs import all_jobs
from scheduler.runner import Scheduler
from tests.trading.conftest import MONDAY_13_30, TUESDAY_10, ServiceWorld, invariants, service_world
from trading import schemas as ts


async def _order(sw: ServiceWorld, i: int, side: str, price: str, quantity: int) -> ts.OrderOut:
    return await sw.trading.place_order(
        sw.traders[i],
        ts.PlaceOrder(
            instrument_id=sw.instrument_id, account_id=sw.accounts[i], side=side, price=price, quantity=str(quantity)
        ),  # type: ignore[arg-type]
        None,
    )


async def _trade_monday(sw: ServiceWorld) -> ts.OrderOut:
    """Two continuous trades: 100 at 50.00 and 50 at 52.00 (VWAP 50.666… → 50.67), and a resting ask at 53.00."""
    await _order(sw, 0, "sell", "50.00", 100)
    assert (await _order(sw, 1, "buy", "50.00", 100)).status == "filled"
    await _order(sw, 0, "sell", "52.00", 50)
    assert (await _order(sw, 1, "buy", "52.00", 50)).status == "filled"
    return await _order(sw, 0, "sell", "53.00", 10)


async def test_the_market_close_job_closes_at_the_vwap_once_per_day_and_sets_the_next_band(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    resting = await _trade_monday(sw)
    job = all_jobs()["market_close"]
    assert (job.kind, job.at_hour, job.at_minute) == ("daily", 15, 5)

    clock.set(clock.now().replace(hour=7, minute=5))  # 15:05 Shanghai
    scheduler = Scheduler({"db": db, "clock": clock, "trading": sw.trading})
    first = await scheduler.fire("market_close", "2026-03-02")
    assert first.ran and first.result["markets"] == [
        {"instrument_id": sw.instrument_id, "close_fen": 5067, "expired_orders": 1}
    ]
    assert not (await scheduler.fire("market_close", "2026-03-02")).ran
    again = await sw.trading.close_trading_day(dt.date(2026, 3, 2))
    assert again.markets[0].already_closed and again.markets[0].close_fen == 5067

    (market,) = await sw.trading.list_markets()
    assert (market.prev_close, market.band_lower, market.band_upper) == ("50.67", "45.61", "55.73")
    order = await sw.trading.get_order(sw.traders[0], resting.id)
    assert (order.status, order.cancel_reason, order.held_base) == ("cancelled", "expired", 0)
    assert await invariants(db) == [] and await sw.trading.reconcile() == []


async def test_a_day_the_scheduler_missed_is_closed_before_the_next_book_opens(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2)
    resting = await _trade_monday(sw)
    clock.set(TUESDAY_10)
    # Tuesday's first order opens Tuesday's book; Monday is closed first, so the band is around 50.67.
    r = await _order(sw, 0, "sell", "55.73", 1)
    assert r.status == "resting"
    book = await sw.trading.get_order_book(sw.instrument_id)
    assert (book.prev_close, book.band_upper) == ("50.67", "55.73")
    assert (await sw.trading.get_order(sw.traders[0], resting.id)).cancel_reason == "expired"
    days = await sw.trading.get_daily_bars(sw.instrument_id, date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 3))
    assert [(d.trade_date, d.close, d.closed) for d in days] == [
        (dt.date(2026, 3, 2), "50.67", True),
        (dt.date(2026, 3, 3), "50.67", False),
    ]
    assert await invariants(db) == [] and await sw.trading.reconcile() == []


async def test_the_monthly_average_price_counts_listed_and_continuous_trades_only(service_db) -> None:
    db, clock = service_db
    sw = await service_world(db, clock, mode="continuous", traders=2, units=150_000, funds_yuan="9000000.00")
    await _trade_monday(sw)
    clock.set(MONDAY_13_30)
    proposal = await sw.trading.propose_block_trade(
        sw.traders[0],
        ts.ProposeBlockTrade(
            instrument_id=sw.instrument_id,
            account_id=sw.accounts[0],
            side="sell",
            counterparty_organisation_id=sw.traders[1].organisation_id,
            price="64.00",
            quantity="100000",
        ),
        None,
    )
    await sw.trading.accept_block_trade(sw.traders[1], proposal.id, ts.AcceptBlockTrade(account_id=sw.accounts[1]))
    assert await sw.trading.monthly_average_price_fen(kind="cea", year=2026, month=3) == 5067
    assert await sw.trading.monthly_average_price_fen(kind="cea", year=2026, month=4) is None
    assert await sw.trading.monthly_average_price_fen(kind="ccer", year=2026, month=3) is None
    # The compliance cycle reads it through its duck-typed hook.
    assert await market_price_fen(sw.trading, 2026, 3) == 5067
    # December rolls over to the next year's January correctly.
    assert await sw.trading.monthly_average_price_fen(kind="cea", year=2025, month=12) is None
