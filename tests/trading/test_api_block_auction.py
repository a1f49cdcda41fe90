"""Block trades (大宗协议) and auctions through the API: each settles delivery versus payment, holdings and fund
balances move exactly, refusals follow the rules, cancellations release holds, and neither sets the close."""

from __future__ import annotations

import datetime as dt

from tests.trading.conftest import MONDAY_13_30, MONDAY_15_05, deposit, invariants, pending_totals, trading_world


async def test_a_block_trade_is_proposed_held_accepted_and_settled_without_setting_the_close(env) -> None:
    env.clock.set(MONDAY_13_30)
    tw = await trading_world(env, mode="listed", units=250_000, funds="8000000.00")
    a, b = tw.traders
    body = {
        "instrument_id": tw.instrument_id,
        "account_id": a.account_id,
        "side": "sell",
        "counterparty_organisation_id": b.organisation_id,
        "price": "60.00",
        "quantity": "120000",
    }
    for change, slug in (
        ({"price": "65.01"}, "outside-band"),
        ({"quantity": "99999"}, "below-block-minimum"),
        ({"counterparty_organisation_id": a.organisation_id}, "accounts-must-differ"),
        ({"quantity": "250001"}, "insufficient-available"),
    ):
        r = await env.post("/api/v1/block-trades", a.key, {**body, **change})
        assert r.json()["type"] == f"/problems/{slug}", (change, r.text)
    r = await env.post("/api/v1/block-trades", a.key, body)
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert proposal["status"] == "proposed"
    assert await tw.units(0) == (250_000, 130_000)
    # The proposer cannot accept its own proposal.
    r = await env.post(f"/api/v1/block-trades/{proposal['id']}/accept", a.key, {"account_id": a.account_id})
    assert r.status_code == 409, r.text

    r = await env.post(f"/api/v1/block-trades/{proposal['id']}/accept", b.key, {"account_id": b.account_id})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "settled" and r.json()["trade_id"] is not None
    assert await tw.units(0) == (130_000, 130_000)
    assert await tw.units(1) == (370_000, 370_000)
    assert (await tw.funds(0))["balance"] == "15200000.00"  # 8,000,000 + 120,000 × 60.00
    assert (await tw.funds(1))["balance"] == "800000.00"
    again = await env.post(f"/api/v1/block-trades/{proposal['id']}/accept", b.key, {"account_id": b.account_id})
    assert again.status_code == 200 and again.json()["status"] == "settled"
    assert (await tw.funds(1))["balance"] == "800000.00"

    # A second proposal is declined: the proposer's hold is released.
    second = {**body, "side": "buy", "quantity": "100000", "price": "40.00"}
    r = await env.post("/api/v1/block-trades", a.key, second)
    assert r.status_code == 201, r.text
    assert (await tw.funds(0))["held"] == "4000000.00"
    r = await env.post(f"/api/v1/block-trades/{r.json()['id']}/cancel", b.key, None)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (await tw.funds(0))["held"] == "0.00"

    r = await env.get(f"/api/v1/markets/{tw.instrument_id}/trades?venue=block", a.key)
    assert [(t["price"], t["quantity"]) for t in r.json()["items"]] == [("60.00", "120000")]
    env.clock.set(MONDAY_15_05)
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {})
    assert r.json()["markets"][0]["close"] == "50.00"  # block trades never set the close
    assert await invariants(env.db) == [] and await env.app.state.trading.reconcile() == []


async def test_a_primary_auction_clears_at_a_uniform_price_with_the_bidder_cap_and_settles(env) -> None:
    tw = await trading_world(env, mode="listed", units=0, funds="100000.00")
    a, b = tw.traders
    reg = tw.regulator
    r = await env.post(
        "/api/v1/auctions",
        reg,
        {
            "instrument_id": tw.instrument_id,
            "type": "primary",
            "volume": "1000",
            "reserve_price": "40.00",
            "bidder_cap_bps": 6000,
        },
    )
    assert r.status_code == 201, r.text
    auction = r.json()
    assert auction["seed"] is None  # sealed until the result
    bids = [
        (a, "52.00", "600"),
        (b, "53.00", "200"),
        (b, "51.00", "600"),
    ]
    for who, price, qty in bids:
        r = await env.post(
            f"/api/v1/auctions/{auction['id']}/bids",
            who.key,
            {"account_id": who.account_id, "price": price, "quantity": qty},
        )
        assert r.status_code == 201, r.text
    assert (await tw.funds(1))["held"] == "41200.00"  # 200 × 53.00 + 600 × 51.00
    # Bids are sealed: a bidder sees its own only.
    r = await env.get(f"/api/v1/auctions/{auction['id']}", a.key)
    assert [x["price"] for x in r.json()["bids"]] == ["52.00"]
    r = await env.post(f"/api/v1/auctions/{auction['id']}/bids", reg, {"account_id": 1, "price": "60", "quantity": "1"})
    assert r.status_code == 403

    r = await env.post(f"/api/v1/auctions/{auction['id']}/clear", reg, None)
    assert r.status_code == 200, r.text
    result = r.json()
    # Ranking 53 (B, 200), 52 (A, 600), 51 (B, trimmed to 400 by the 60% cap): 1,000 reached at 51.00.
    assert (result["status"], result["clearing_price"], result["sold"]) == ("cleared", "51.00", "1000")
    assert result["seed"] is not None and result["tie_order"] is not None
    assert {(x["price"], x["allocated"], x["status"]) for x in result["bids"]} == {
        ("53.00", "200", "won"),
        ("52.00", "600", "won"),
        ("51.00", "200", "won"),
    }
    assert await tw.units(0) == (600, 600)
    assert await tw.units(1) == (400, 400)
    assert (await tw.funds(0))["balance"] == "69400.00"  # 100,000 − 600 × 51.00
    assert (await tw.funds(1))["balance"] == "79600.00"  # 100,000 − 400 × 51.00
    assert (await tw.funds(1))["held"] == "0.00"
    r = await env.get("/api/v1/funds", reg)
    assert r.json()["balance"] == "51000.00"
    assert (await env.post(f"/api/v1/auctions/{auction['id']}/clear", reg, None)).json() == result

    # An auction whose best bids clear below the reserve is cancelled and every hold released.
    r = await env.post(
        "/api/v1/auctions",
        reg,
        {
            "instrument_id": tw.instrument_id,
            "type": "primary",
            "volume": "100",
            "reserve_price": "60.00",
            "bidder_cap_bps": 10000,
        },
    )
    second = r.json()["id"]
    r = await env.post(
        f"/api/v1/auctions/{second}/bids", a.key, {"account_id": a.account_id, "price": "55.00", "quantity": "100"}
    )
    assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/auctions/{second}/clear", reg, None)
    assert r.json()["status"] == "cancelled" and "reserve" in r.json()["reason"]
    assert (await tw.funds(0))["held"] == "0.00"
    # The seller may withdraw an open auction (a bidder may not): units and bids are released.
    r = await env.post("/api/v1/auctions", reg, {"instrument_id": tw.instrument_id, "type": "primary", "volume": "50"})
    third = r.json()["id"]
    r = await env.post(
        f"/api/v1/auctions/{third}/bids", b.key, {"account_id": b.account_id, "price": "50.00", "quantity": "50"}
    )
    assert (await tw.funds(1))["held"] == "2500.00"
    assert (await env.post(f"/api/v1/auctions/{third}/cancel", b.key, None)).status_code == 404
    r = await env.post(f"/api/v1/auctions/{third}/cancel", reg, None)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert [x["status"] for x in r.json()["bids"]] == ["cancelled"]
    assert (await tw.funds(1))["held"] == "0.00"
    assert await pending_totals(env.db, tw.instrument_id) == (0, 0)
    # Auction units are "bought today": T+1 applies to them too.
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "1"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/t-plus-one"
    assert await invariants(env.db) == [] and await env.app.state.trading.reconcile() == []


async def test_a_one_way_auction_sells_a_holders_units_pay_as_bid_within_its_floor_and_ceiling(env) -> None:
    tw = await trading_world(env, mode="listed", units=150_000, funds="0", traders=3)
    seller, b, c = tw.traders
    await deposit(env, b.key, tw.bank, "6000000.00")
    await deposit(env, c.key, tw.bank, "6000000.00")
    base = {
        "instrument_id": tw.instrument_id,
        "type": "one-way",
        "account_id": seller.account_id,
        "volume": "100000",
        "floor_price": "48.00",
        "ceiling_price": "52.00",
        "pricing": "pay-as-bid",
    }
    r = await env.post("/api/v1/auctions", seller.key, {**base, "ceiling_price": "55.01"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/auction-spec-invalid"
    r = await env.post("/api/v1/auctions", seller.key, {**base, "volume": "99999"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/auction-spec-invalid"
    r = await env.post("/api/v1/auctions", seller.key, base)
    assert r.status_code == 201, r.text
    auction = r.json()["id"]
    assert await tw.units(0) == (150_000, 50_000)
    bid = {"account_id": b.account_id, "price": "47.99", "quantity": "1"}
    r = await env.post(f"/api/v1/auctions/{auction}/bids", b.key, bid)
    assert r.status_code == 422 and r.json()["type"] == "/problems/below-floor"
    r = await env.post(f"/api/v1/auctions/{auction}/bids", seller.key, {**bid, "account_id": seller.account_id})
    assert r.status_code == 422 and r.json()["type"] == "/problems/self-trade"
    for who, price, qty in ((b, "51.00", "70000"), (c, "50.00", "70000"), (c, "48.00", "10000")):
        r = await env.post(
            f"/api/v1/auctions/{auction}/bids", who.key, {"account_id": who.account_id, "price": price, "quantity": qty}
        )
        assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/auctions/{auction}/clear", seller.key, None)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["sold"], r.json()["clearing_price"]) == ("cleared", "100000", "50.00")
    # Pay as bid: B 70,000 × 51.00, C 30,000 × 50.00; C's 48.00 bid loses and is released.
    assert await tw.units(0) == (50_000, 50_000)
    assert await tw.units(1) == (220_000, 220_000)
    assert await tw.units(2) == (180_000, 180_000)
    assert (await tw.funds(0))["balance"] == "5070000.00"
    assert (await tw.funds(1))["balance"] == "2430000.00"
    assert ((await tw.funds(2))["balance"], (await tw.funds(2))["held"]) == ("4500000.00", "0.00")
    assert await invariants(env.db) == [] and await env.app.state.trading.reconcile() == []
    env.clock.advance(dt.timedelta(hours=5))
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {})
    assert r.json()["markets"][0]["close"] == "50.00"  # auctions never set the close
