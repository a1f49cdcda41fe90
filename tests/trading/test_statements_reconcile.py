"""Statements reconcile: every movement of units, including trades on the book, block trades and auctions, is a
registry transaction, so for every account opening balance (nothing) + the movements `listAccountTransactions`
lists = the closing balance its holdings show. Checked on a whole-unit instrument and a 3-decimal one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.trading.conftest import MONDAY_13_30, invariants, trading_world


async def listed_movements(env: Any, key: str, account_id: int) -> tuple[int, list[dict[str, Any]]]:
    """The account's net movement in base units from its listed completed transactions (every page)."""
    net, rows, before = 0, [], None
    while True:
        q = f"?limit=50{'' if before is None else f'&before_id={before}'}"
        r = await env.get(f"/api/v1/accounts/{account_id}/transactions{q}", key)
        assert r.status_code == 200, r.text
        page = r.json()
        for t in page["items"]:
            if t["status"] != "completed":
                continue
            rows.append(t)
            if t["to_account_id"] == account_id:
                net += t["quantity_base"]
            if t["from_account_id"] == account_id:
                net -= t["quantity_base"]
        before = page["next_before_id"]
        if before is None:
            return net, rows


async def closing(env: Any, key: str, account_id: int, instrument_id: int) -> int:
    r = await env.get(f"/api/v1/accounts/{account_id}/holdings", key)
    assert r.status_code == 200, r.text
    return sum(h["balance_base"] for h in r.json() if h["instrument"]["id"] == instrument_id)


@pytest.mark.parametrize(("kind", "q"), [("cea", ("300", "120", "80")), ("discharge", ("3.500", "1.250", "0.125"))])
async def test_opening_plus_listed_movements_is_the_closing_balance_after_trades(env, kind: str, q: tuple) -> None:
    tw = await trading_world(env, mode="continuous", kind=kind, units=1_000, issue=10_000, funds="1000000.00")
    a, b = tw.traders
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": q[0]})
    assert r.status_code == 201, r.text
    r = await tw.order(1, {"side": "buy", "price": "50.00", "quantity": q[1]})  # partly fills the resting sell
    assert r.status_code == 201 and r.json()["fills"], r.text
    r = await tw.order(1, {"side": "buy", "price": "51.00", "quantity": q[2]})
    assert r.status_code == 201 and r.json()["fills"], r.text
    for trader in (a, b):
        net, rows = await listed_movements(env, trader.key, trader.account_id)
        assert net == await closing(env, trader.key, trader.account_id, tw.instrument_id)
        trades = [t for t in rows if t["code"] == "trade"]
        assert len(trades) == 2
        assert {t["details"]["trade_id"] for t in trades} and all(t["details"]["venue"] for t in trades)
    assert await invariants(env.db) == []


async def test_block_trades_reconcile_too(env) -> None:
    env.clock.set(MONDAY_13_30)
    tw = await trading_world(env, mode="listed", kind="cea", units=150_000, issue=400_000, funds="90000000.00")
    a, b = tw.traders
    body = {"instrument_id": tw.instrument_id, "account_id": a.account_id, "side": "sell",
            "counterparty_organisation_id": b.organisation_id, "price": "50.00", "quantity": "100000"}  # fmt: skip
    r = await env.post("/api/v1/block-trades", a.key, body)
    assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/block-trades/{r.json()['id']}/accept", b.key, {"account_id": b.account_id})
    assert r.status_code == 200, r.text
    for trader in (a, b):
        net, rows = await listed_movements(env, trader.key, trader.account_id)
        assert net == await closing(env, trader.key, trader.account_id, tw.instrument_id)
        assert [t["quantity"] for t in rows if t["code"] == "trade"] == ["100000"]
    assert await invariants(env.db) == []
