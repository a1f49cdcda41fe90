"""A restart rebuilds the same order books: two enterprises trade through the API of one application instance
(a listed and a continuous market), the instance is shut down, a new instance starts on the same database, and
each book it rebuilds from the journal equals the book before the restart (`snapshot()`); trading then goes on
against the orders that rested across the restart, and every hold and balance still reconciles.

The instances run in this process with a fixed clock inside the trading session (the real clock would put most
runs outside 09:30–15:00); a new instance has nothing in memory, exactly like a new process."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.identity import Role
from tests.conftest import BACKENDS, fresh_database_url, make_env
from tests.helpers import world
from tests.trading.conftest import MONDAY_10, deposit, invariants

DAY = MONDAY_10.date()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_new_instance_rebuilds_identical_books_and_trades_on(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    env, client = await make_env(url)
    try:
        w = await world(env, n_enterprises=2, issue=100_000, vintage=2025)
        r = await env.post(
            "/api/v1/issuances",
            w.regulator,
            {"kind": "cea", "scheme": "national", "vintage": 2026, "quantity": "100000"},
        )
        tx = r.json()
        approval = {"decision": "approve"}
        assert (await env.post(f"/api/v1/transactions/{tx['id']}/approval", w.regulator2, approval)).status_code == 200
        instruments = {"listed": w.instrument_id, "continuous": tx["instrument_id"]}
        bank = await env.key(Role.BANK, name="结算银行")
        for mode, inst in instruments.items():
            r = await env.post(
                "/api/v1/markets", w.regulator, {"instrument_id": inst, "mode": mode, "reference_price": "50.00"}
            )
            assert r.status_code == 201, r.text
        a, b = w.enterprises
        for ent in (a, b):
            await deposit(env, ent["key"], bank, "100000.00")
            for inst in instruments.values():
                r = await env.post(
                    "/api/v1/allocations",
                    w.regulator,
                    {"to_account_id": ent["account_id"], "instrument_id": inst, "quantity": "5000"},
                )
                assert r.status_code == 201, r.text

        async def order(ent: dict, inst: int, body: dict) -> dict:  # type: ignore[type-arg]
            r = await env.post(
                "/api/v1/orders", ent["key"], {"instrument_id": inst, "account_id": ent["account_id"], **body}
            )
            assert r.status_code == 201, r.text
            return r.json()  # type: ignore[no-any-return]

        listed, continuous = instruments["listed"], instruments["continuous"]
        ask = await order(a, listed, {"side": "sell", "price": "51.00", "quantity": "300"})
        await order(a, listed, {"side": "sell", "price": "52.00", "quantity": "100"})
        await order(b, listed, {"side": "buy", "price": "48.00", "quantity": "200"})
        await order(b, listed, {"side": "buy", "quantity": "120", "listing_id": ask["id"]})
        for price, qty in (("50.00", 100), ("50.50", 80), ("51.00", 60)):
            await order(a, continuous, {"side": "sell", "price": price, "quantity": str(qty)})
        await order(b, continuous, {"side": "buy", "price": "50.50", "quantity": "150"})
        await order(b, continuous, {"side": "buy", "price": "49.00", "quantity": "40"})
        await order(b, continuous, {"kind": "ioc", "side": "buy", "price": "51.00", "quantity": "5"})
        cancelled = await order(a, continuous, {"side": "sell", "price": "53.00", "quantity": "10"})
        r = await env.post(f"/api/v1/orders/{cancelled['id']}/cancel", a["key"], None)
        assert r.status_code == 200, r.text
        trading = env.app.state.trading
        before = {mode: await trading.book_snapshot(inst, DAY) for mode, inst in instruments.items()}
        assert all(s is not None and s.trade_seq > 0 for s in before.values())
        funds_before = (await env.get("/api/v1/funds", b["key"])).json()
    finally:
        await client.__aexit__(None, None, None)
        await env.db.dispose()

    env2, client2 = await make_env(url)
    try:
        trading2 = env2.app.state.trading
        assert trading2 is not trading
        after = {mode: await trading2.book_snapshot(inst, DAY) for mode, inst in instruments.items()}
        assert after == before
        assert (await env2.get("/api/v1/funds", b["key"])).json() == funds_before
        # Trading goes on against orders that rested across the restart.
        r = await env2.post(
            "/api/v1/orders",
            b["key"],
            {
                "instrument_id": listed,
                "account_id": b["account_id"],
                "side": "buy",
                "quantity": "180",
                "listing_id": ask["id"],
            },
        )
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text
        r = await env2.post(
            "/api/v1/orders",
            b["key"],
            {
                "instrument_id": continuous,
                "account_id": b["account_id"],
                "side": "buy",
                "price": "51.00",
                "quantity": "60",
            },
        )
        assert r.status_code == 201 and r.json()["filled"] == "60", r.text
        r = await env2.get(f"/api/v1/orders/{ask['id']}", a["key"])
        assert (r.json()["status"], r.json()["filled"]) == ("filled", "300")
        assert await invariants(env2.db) == []
        assert await trading2.reconcile() == []
    finally:
        await client2.__aexit__(None, None, None)
        await env2.db.dispose()
