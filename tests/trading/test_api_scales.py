"""Money at every unit scale through the API: prices are per display unit (元/tce, 元/t), quantities carry the
instrument's decimals, and what moves is price × quantity in whole fen (trading/domain/money.py), never 1,000
times it. Order maxima and block minima are in display units too."""

from __future__ import annotations

import pytest

from tests.trading.conftest import MONDAY_13_30, invariants, pending_totals, trading_world


@pytest.mark.parametrize("kind", ["energy_use", "discharge"])
async def test_buying_one_unit_at_51_yuan_moves_exactly_51_yuan_and_its_fee(env, kind: str) -> None:
    tw = await trading_world(
        env, mode="continuous", kind=kind, units=10, issue=1_000, funds="1000.00",
        market={"taker_fee_bps": 10, "maker_fee_bps": 10},
    )  # fmt: skip
    r = await tw.order(0, {"side": "sell", "price": "51.00", "quantity": "2.500"})
    assert r.status_code == 201, r.text
    assert r.json()["held"] == "2.500"
    r = await tw.order(1, {"side": "buy", "price": "51.00", "quantity": "1.000"})
    assert r.status_code == 201, r.text
    fills = r.json()["fills"]
    # 1.000 × 51.00 = 51.00 元; fee 10 bps = 0.051 元 → 0.05 (rounded down) on each side.
    assert [(f["price"], f["quantity"], f["fee"]) for f in fills] == [("51.00", "1.000", "0.05")]
    assert (await tw.funds(1))["balance"] == "948.95"  # 1,000 − 51.00 − 0.05
    assert (await tw.funds(0))["balance"] == "1050.95"  # 1,000 + 51.00 − 0.05
    assert await tw.units(1) == (11_000, 11_000)  # base units: 11.000

    # 0.137 at 51.00 is 6.987 元: the buyer pays 6.98, the seller receives 6.98 less its fee, nothing is lost.
    r = await tw.order(1, {"side": "buy", "price": "51.00", "quantity": "0.137"})
    assert r.status_code == 201, r.text
    assert [(f["quantity"], f["fee"]) for f in r.json()["fills"]] == [("0.137", "0.00")]
    assert (await tw.funds(1))["balance"] == "941.97"
    assert (await tw.funds(0))["balance"] == "1057.93"
    r = await env.get(f"/api/v1/markets/{tw.instrument_id}/trades", tw.traders[0].key)
    assert r.status_code == 200, r.text

    # A resting buy holds its limit × quantity (and the largest fee), at the instrument's scale.
    r = await tw.order(1, {"side": "buy", "price": "50.00", "quantity": "2.000"})
    assert r.status_code == 201, r.text
    assert r.json()["held"] == "100.10"  # 2.000 × 50.00 + 10 bps
    assert (await tw.funds(1))["held"] == "100.10"
    assert await invariants(env.db) == []
    assert await env.app.state.trading.reconcile() == []
    assert await pending_totals(env.db, tw.instrument_id) == (1_363, 10_010)


async def test_order_maximum_and_block_minimum_are_display_units_on_a_scaled_instrument(env) -> None:
    env.clock.set(MONDAY_13_30)
    tw = await trading_world(env, mode="listed", kind="energy_use", units=150_000, issue=400_000, funds="9000000.00")
    r = await env.get("/api/v1/markets", tw.traders[0].key)
    assert r.status_code == 200, r.text
    [market] = [m for m in r.json() if m["instrument_id"] == tw.instrument_id]
    assert (market["quantity_max"], market["block_quantity_min"]) == ("99999.000", "100000.000")
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100.000"})
    assert r.status_code == 201, r.text  # 100 tce is an ordinary listed order, not over a maximum
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100000.000"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/quantity-above-max", r.text
    a, b = tw.traders
    body = {
        "instrument_id": tw.instrument_id,
        "account_id": a.account_id,
        "side": "sell",
        "counterparty_organisation_id": b.organisation_id,
        "price": "50.00",
    }
    r = await env.post("/api/v1/block-trades", a.key, {**body, "quantity": "99999.999"})
    assert r.json()["type"] == "/problems/below-block-minimum", r.text
    assert "100,000.000" in r.json()["detail"]
    r = await env.post("/api/v1/block-trades", a.key, {**body, "quantity": "100000.500"})
    assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/block-trades/{r.json()['id']}/accept", b.key, {"account_id": b.account_id})
    assert r.status_code == 200, r.text
    assert (await tw.funds(0))["balance"] == "14000025.00"  # 9,000,000 + 100,000.5 × 50.00
    assert (await tw.funds(1))["balance"] == "3999975.00"
    assert await invariants(env.db) == []
