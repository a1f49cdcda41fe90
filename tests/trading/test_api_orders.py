"""Two enterprises trade allowances through the API, in the listed agreement mode (挂牌/摘牌) and in the continuous
mode; holdings and fund balances move exactly, fees go to the fee account, the day closes at the VWAP of the
listed trades and the next day's band follows it; T+1, self-trade prevention, bad prices and cancels of filled
orders are refused as the rules say."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from core.db import UnitOfWork
from core.models import LedgerAccount, LedgerTransfer
from tests.trading.conftest import (
    MONDAY_15_05,
    TUESDAY_10,
    TradingWorld,
    invariants,
    pending_totals,
    trading_world,
)


async def _check_books(tw: TradingWorld) -> None:
    assert await invariants(tw.env.db) == []
    assert await tw.env.app.state.trading.reconcile() == []


async def _fee_account_fen(env: Any) -> int:
    async def work(uow: UnitOfWork) -> int:
        acc = (
            await uow.session.execute(select(LedgerAccount).where(LedgerAccount.owner_kind == "fee"))
        ).scalar_one_or_none()
        return 0 if acc is None else acc.credits_posted - acc.debits_posted

    return await env.db.read(work)


async def test_two_enterprises_trade_by_listing_and_picking_and_the_day_closes_at_the_vwap(env) -> None:
    tw = await trading_world(env, mode="listed")
    a, b = tw.traders
    r = await tw.order(0, {"side": "sell", "price": "51.00", "quantity": "300"})
    assert r.status_code == 201, r.text
    listing_a = r.json()
    assert (listing_a["status"], listing_a["held"]) == ("resting", "300")
    r = await tw.order(1, {"side": "buy", "price": "49.00", "quantity": "200"})
    assert r.status_code == 201, r.text
    listing_b = r.json()
    assert listing_b["held"] == "9800.00"

    # The book shows both listings, each pickable by id.
    r = await env.get(f"/api/v1/markets/{tw.instrument_id}/book", b.key)
    book = r.json()
    assert [lv["price"] for lv in book["bids"]] == ["49.00"] and [lv["price"] for lv in book["asks"]] == ["51.00"]
    assert {x["id"] for x in book["listings"]} == {listing_a["id"], listing_b["id"]}

    # B picks 100 of A's sell listing at 51.00; A picks 50 of B's buy listing at 49.00.
    r = await tw.order(1, {"side": "buy", "quantity": "100", "listing_id": listing_a["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "filled" and r.json()["fills"][0]["price"] == "51.00"
    r = await tw.order(0, {"side": "sell", "quantity": "50", "listing_id": listing_b["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["fills"][0]["price"] == "49.00"

    assert await tw.units(0) == (10_000 - 150, 10_000 - 150 - 200)
    assert await tw.units(1) == (10_000 + 150, 10_000 + 150)
    fa, fb = await tw.funds(0), await tw.funds(1)
    assert (fa["balance"], fa["held"]) == ("1007550.00", "0.00")
    assert (fb["balance"], fb["held"], fb["available"]) == ("992450.00", "7350.00", "985100.00")
    assert await pending_totals(env.db, tw.instrument_id) == (200, 735_000)
    await _check_books(tw)

    r = await env.get(f"/api/v1/markets/{tw.instrument_id}/trades", a.key)
    assert [(t["price"], t["quantity"], t["venue"]) for t in r.json()["items"]] == [
        ("49.00", "50", "listed"),
        ("51.00", "100", "listed"),
    ]

    # The close: VWAP (100 × 51.00 + 50 × 49.00) / 150 = 50.333… → 50.33; open orders expire, holds released.
    env.clock.set(MONDAY_15_05)
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {})
    assert r.status_code == 200, r.text
    assert r.json()["markets"] == [
        {
            "instrument_id": tw.instrument_id,
            "close": "50.33",
            "close_fen": 5033,
            "expired_orders": 2,
            "expired_block_trades": 0,
            "already_closed": False,
        }
    ]
    assert await pending_totals(env.db, tw.instrument_id) == (0, 0)
    assert (await tw.funds(1))["held"] == "0.00"
    r = await env.get(f"/api/v1/orders/{listing_a['id']}", a.key)
    assert (r.json()["status"], r.json()["cancel_reason"], r.json()["filled"]) == ("cancelled", "expired", "100")

    r = await env.get(f"/api/v1/markets/{tw.instrument_id}/bars?date_from=2026-03-01&date_to=2026-03-31", a.key)
    assert r.status_code == 200, r.text
    (day,) = r.json()
    assert (day["trade_date"], day["prev_close"], day["close"], day["closed"]) == ("2026-03-02", "50.00", "50.33", True)
    (bar,) = day["bars"]
    assert (bar["venue"], bar["open"], bar["high"], bar["low"], bar["last"]) == (
        "listed",
        "51.00",
        "51.00",
        "49.00",
        "49.00",
    )
    assert (bar["volume"], bar["turnover"], bar["trade_count"]) == ("150", "7550.00", 2)

    # The next day's band is ±10% around 50.33, edges rounded inward: 45.30 .. 55.36.
    r = await env.get("/api/v1/markets", a.key)
    (market,) = r.json()
    assert (market["prev_close"], market["band_lower"], market["band_upper"]) == ("50.33", "45.30", "55.36")
    env.clock.set(TUESDAY_10)
    r = await tw.order(0, {"side": "sell", "price": "55.37", "quantity": "1"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/outside-band"
    r = await tw.order(0, {"side": "sell", "price": "55.36", "quantity": "1"})
    assert r.status_code == 201, r.text
    await _check_books(tw)


async def test_continuous_orders_match_price_time_with_fees_and_self_trades_are_prevented(env) -> None:
    tw = await trading_world(env, mode="continuous", market={"taker_fee_bps": 10, "maker_fee_bps": 10})
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"})
    assert r.status_code == 201, r.text
    r = await tw.order(0, {"side": "sell", "price": "50.50", "quantity": "100"})
    assert r.status_code == 201, r.text
    second_ask = r.json()["id"]

    # B's limit buy sweeps 100 at 50.00 and 50 at 50.50 (maker prices). Fees of 10 bps per trade, rounded down
    # to the fen: 5,000.00 → 5.00 and 2,525.00 → 2.525 → 2.52; each side pays 7.52.
    r = await tw.order(1, {"side": "buy", "price": "50.50", "quantity": "150"})
    assert r.status_code == 201, r.text
    taker = r.json()
    assert taker["status"] == "filled"
    assert [(f["price"], f["quantity"], f["fee"]) for f in taker["fills"]] == [
        ("50.00", "100", "5.00"),
        ("50.50", "50", "2.52"),
    ]
    assert (await tw.funds(1))["balance"] == "992467.48"  # 1,000,000 − 7,525.00 − 7.52
    assert (await tw.funds(0))["balance"] == "1007517.48"  # 1,000,000 + 7,525.00 − 7.52
    assert await _fee_account_fen(env) == 1504
    assert await tw.units(1) == (10_150, 10_150)
    assert await tw.units(0) == (9_850, 9_800)

    # A market buy takes what is left (50 at 50.50); the unfilled rest is cancelled and its hold released.
    r = await tw.order(1, {"side": "buy", "kind": "market", "quantity": "60"})
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["filled"], r.json()["cancel_reason"]) == (
        "cancelled",
        "50",
        "unfilled-residual",
    )
    r = await env.get(f"/api/v1/orders/{second_ask}", tw.traders[0].key)
    assert r.json()["status"] == "filled"

    # A's own buy meets A's own ask: self-trade prevention cancels the taker, nothing trades.
    r = await tw.order(0, {"side": "sell", "price": "50.20", "quantity": "10"})
    assert r.status_code == 201, r.text
    before = await tw.units(0)
    r = await tw.order(0, {"side": "buy", "price": "50.20", "quantity": "10"})
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["cancel_reason"], r.json()["fills"]) == ("cancelled", "self-trade", [])
    assert await tw.units(0) == before
    assert (await tw.funds(0))["held"] == "0.00"
    # IOC and FOK: a FOK larger than the book has no effect at all.
    r = await tw.order(1, {"side": "buy", "kind": "fok", "price": "50.20", "quantity": "11"})
    assert (r.json()["status"], r.json()["cancel_reason"], r.json()["fills"]) == ("cancelled", "fok-unfillable", [])
    r = await tw.order(1, {"side": "buy", "kind": "ioc", "price": "50.20", "quantity": "4"})
    assert (r.json()["status"], r.json()["filled"]) == ("filled", "4")
    await _check_books(tw)


async def test_units_bought_today_are_sellable_from_the_next_trading_day(env) -> None:
    tw = await trading_world(env, mode="listed", traders=2, units=100)
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"})
    r = await tw.order(1, {"side": "buy", "quantity": "100", "listing_id": r.json()["id"]})
    assert r.status_code == 201, r.text
    # B holds 200 now; 100 of them were bought today.
    r = await tw.order(1, {"side": "sell", "price": "50.00", "quantity": "101"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/t-plus-one", r.text
    assert r.json()["sellable"] == "100"
    r = await tw.order(1, {"side": "sell", "price": "50.00", "quantity": "201"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/insufficient-available"
    r = await tw.order(1, {"side": "sell", "price": "50.00", "quantity": "100"})
    assert r.status_code == 201, r.text
    env.clock.set(MONDAY_15_05)
    assert (await env.post("/api/v1/trading-days/close", tw.regulator, {})).status_code == 200
    env.clock.set(TUESDAY_10)
    r = await tw.order(1, {"side": "sell", "price": "50.00", "quantity": "200"})
    assert r.status_code == 201, r.text
    await _check_books(tw)


async def test_bad_prices_and_quantities_are_refused_with_the_field_and_nothing_changes(env) -> None:
    # A scheme with a 0.05 yuan tick and a lot of 10 units, so that off-tick and off-lot orders can be sent at all.
    tw = await trading_world(env, mode="listed", traders=1, market={"tick": "0.05", "lot": "10"})
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"side": "sell", "price": "50.03", "quantity": "10"}, 422, "off-tick", "price"),
        ({"side": "sell", "price": "50.00", "quantity": "15"}, 422, "off-lot", "quantity"),
        ({"side": "sell", "price": "50.001", "quantity": "10"}, 422, "invalid-input", "price"),
        ({"side": "sell", "price": "60.00", "quantity": "10"}, 422, "outside-band", "price"),
        ({"side": "sell", "price": "44.95", "quantity": "10"}, 422, "outside-band", "price"),
        ({"side": "sell", "price": "0", "quantity": "10"}, 422, "invalid-input", "price"),
        ({"side": "sell", "price": "-50", "quantity": "10"}, 422, "invalid-input", "price"),
        ({"side": "sell", "price": 50.5, "quantity": "10"}, 422, "invalid-input", "price"),
        ({"side": "sell", "price": "1e2", "quantity": "10"}, 422, "invalid-input", "price"),
        ({"side": "sell", "price": "50.00", "quantity": "1.5"}, 422, "invalid-input", "quantity"),
        ({"side": "sell", "price": "50.00", "quantity": "0"}, 422, "invalid-input", "quantity"),
        ({"side": "sell", "price": "50.00", "quantity": "100000"}, 422, "quantity-above-max", "quantity"),
        ({"side": "sell", "kind": "ioc", "price": "50.00", "quantity": "10"}, 422, "wrong-mode", "kind"),
        ({"side": "sell", "kind": "market", "price": "50.00", "quantity": "10"}, 422, "invalid-price", "price"),
        ({"side": "sell", "quantity": "10"}, 422, "invalid-price", "price"),
        ({"side": "sell", "price": "50.00", "quantity": "10", "status": "filled"}, 422, "invalid-input", "status"),
        ({"side": "sell", "price": "50.00", "quantity": "10010"}, 409, "insufficient-available", "quantity"),
        ({"side": "buy", "price": "50.00", "quantity": "10", "listing_id": 999}, 422, "invalid-input", "price"),
        ({"side": "buy", "quantity": "10", "listing_id": 999}, 404, "not-found", "listing_id"),
    ]
    for body, status, slug, field_name in cases:
        r = await tw.order(0, body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["type"] == f"/problems/{slug}", (body, r.text)
        assert r.json().get("field") == field_name, (body, r.text)
    assert await pending_totals(env.db, tw.instrument_id) == (0, 0)
    r = await env.get("/api/v1/orders", tw.traders[0].key)
    assert r.json()["items"] == []
    # Outside the sessions: 12:00 Shanghai.
    env.clock.advance(dt.timedelta(hours=2))
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "10"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/market-closed"


async def test_listings_that_cross_and_picks_of_own_listings_are_refused(env) -> None:
    tw = await trading_world(env, mode="listed")
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "10"})
    own = r.json()["id"]
    r = await tw.order(1, {"side": "buy", "price": "50.00", "quantity": "10"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/would-cross"
    r = await tw.order(0, {"side": "buy", "quantity": "5", "listing_id": own})
    assert r.status_code == 422 and r.json()["type"] == "/problems/self-trade"
    r = await tw.order(1, {"side": "sell", "quantity": "5", "listing_id": own})
    assert r.status_code == 422 and r.json()["type"] == "/problems/pick-wrong-side"
    r = await tw.order(1, {"side": "buy", "quantity": "11", "listing_id": own})
    assert r.status_code == 409 and r.json()["type"] == "/problems/pick-quantity-above-listing"
    await _check_books(tw)


async def test_cancel_of_a_filled_order_is_409_and_every_hold_is_released_exactly_once(env) -> None:
    tw = await trading_world(env, mode="listed")
    a, b = tw.traders
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "10"})
    filled = r.json()["id"]
    r = await tw.order(1, {"side": "buy", "quantity": "10", "listing_id": filled})
    pick = r.json()["id"]
    for oid, key in ((filled, a.key), (pick, b.key)):
        r = await env.post(f"/api/v1/orders/{oid}/cancel", key, None)
        assert r.status_code == 409 and r.json()["type"] == "/problems/order-filled", r.text

    r = await tw.order(1, {"side": "buy", "price": "49.00", "quantity": "20"})
    resting = r.json()["id"]
    assert (await tw.funds(1))["held"] == "980.00"
    # Another enterprise's order is not found, for reading and for cancelling.
    assert (await env.get(f"/api/v1/orders/{resting}", a.key)).status_code == 404
    assert (await env.post(f"/api/v1/orders/{resting}/cancel", a.key, None)).status_code == 404
    r = await env.post(f"/api/v1/orders/{resting}/cancel", b.key, None, idem="cancel-once")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    replay = await env.post(f"/api/v1/orders/{resting}/cancel", b.key, None, idem="cancel-once")
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == r.json()
    again = await env.post(f"/api/v1/orders/{resting}/cancel", b.key, None)
    assert again.status_code == 409 and again.json()["type"] == "/problems/order-cancelled"
    assert (await tw.funds(1))["held"] == "0.00"

    async def resolutions(uow: UnitOfWork) -> list[tuple[str, int]]:
        rows = await uow.session.execute(
            select(LedgerTransfer.kind, LedgerTransfer.amount).where(
                LedgerTransfer.ref == f"order:{resting}", LedgerTransfer.resolves_id.is_not(None)
            )
        )
        return [(k, n) for k, n in rows.all()]

    assert await env.db.read(resolutions) == [("void_pending", 0)]
    await _check_books(tw)


async def test_a_retried_order_with_the_same_key_has_one_effect(env) -> None:
    tw = await trading_world(env, mode="continuous", traders=1)
    body = {"side": "sell", "price": "50.00", "quantity": "7"}
    first = await tw.order(0, body, idem="order-1")
    second = await tw.order(0, body, idem="order-1")
    assert first.status_code == second.status_code == 201
    assert second.headers.get("idempotent-replayed") == "true" and second.json() == first.json()
    other = await tw.order(0, {**body, "quantity": "8"}, idem="order-1")
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    r = await env.get("/api/v1/orders", tw.traders[0].key)
    assert [o["id"] for o in r.json()["items"]] == [first.json()["id"]]
    assert await pending_totals(env.db, tw.instrument_id) == (7, 0)
