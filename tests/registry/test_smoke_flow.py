"""The newcomer's path: issue, approve, allocate, transfer between two enterprises, see holdings and history."""

from __future__ import annotations

from core import ledger
from tests.helpers import allocate, holding, world


async def test_issue_allocate_transfer_moves_units_and_serials(env) -> None:
    w = await world(env, n_enterprises=2, issue=1000)
    a, b = w.enterprises
    await allocate(env, w, a["account_id"], 300)
    # b's account is another enterprise's: untrusted, so the transfer waits for a second representative.
    r = await env.post(
        "/api/v1/transfers",
        a["key"],
        {
            "from_account_id": a["account_id"],
            "to_account_id": b["account_id"],
            "instrument_id": w.instrument_id,
            "quantity": "120",
        },
    )
    assert r.status_code == 201, r.text
    tx = r.json()
    assert tx["status"] == "awaiting_approval"
    h = await holding(env, a["key"], a["account_id"], w.instrument_id)
    assert h is not None and h["balance"] == "300" and h["available"] == "180" and h["held"] == "120"
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", a["key"], {"decision": "approve"})
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required"
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", a["key2"], {"decision": "approve"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    import datetime as dt

    # Approved on Monday 10:00: it executes at 12:00 on Tuesday, not before.
    env.clock.advance(dt.timedelta(hours=25, minutes=59))
    assert await env.app.state.registry.execute_due_transfers() == 0
    env.clock.advance(dt.timedelta(minutes=1))
    assert await env.app.state.registry.execute_due_transfers() == 1
    assert await env.app.state.registry.execute_due_transfers() == 0
    hb = await holding(env, b["key"], b["account_id"], w.instrument_id)
    assert hb is not None and hb["balance"] == "120"
    assert hb["serial_blocks"][0]["quantity"] == 120
    ha = await holding(env, a["key"], a["account_id"], w.instrument_id)
    assert ha is not None and ha["balance"] == "180" and ha["available"] == "180"

    async def inv(uow):
        return await ledger.check_invariants(uow.session)

    assert await env.db.read(inv) == []
    r = await env.get(f"/api/v1/accounts/{a['account_id']}/transactions", a["key"])
    assert [t["code"] for t in r.json()["items"]] == ["transfer", "allocation"]
