"""Fund accounts in yuan: deposits and withdrawals are requested by their owner and decided by the settlement
bank; a deposit credits nothing until confirmed, a withdrawal is held at once and paid out (or released) on the
bank's decision, exactly once."""

from __future__ import annotations

from core.identity import Role
from tests.trading.conftest import invariants, trading_world


async def test_deposits_and_withdrawals_move_money_only_on_the_banks_confirmation(env) -> None:
    tw = await trading_world(env, mode="listed", traders=1, units=0, funds="0")
    me = tw.traders[0]
    assert (await tw.funds(0))["balance"] == "0.00"
    r = await env.post("/api/v1/funds/deposits", me.key, {"amount": "1234.56", "reference": "电汇 001"})
    assert r.status_code == 201, r.text
    dep = r.json()
    assert (dep["status"], dep["amount"]) == ("requested", "1234.56")
    assert (await tw.funds(0))["balance"] == "0.00"
    # Only the bank decides; the owner cannot confirm its own deposit.
    assert (await env.post(f"/api/v1/funds/movements/{dep['id']}/decision", me.key, {})).status_code == 403
    r = await env.get("/api/v1/funds/movements?status=requested", tw.bank)
    assert [m["id"] for m in r.json()] == [dep["id"]]
    r = await env.post(f"/api/v1/funds/movements/{dep['id']}/decision", tw.bank, {"decision": "confirm"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert (await tw.funds(0))["balance"] == "1234.56"
    other_bank = await env.key(Role.BANK, name="另一家银行")
    r = await env.post(f"/api/v1/funds/movements/{dep['id']}/decision", other_bank, {"decision": "reject"})
    assert r.status_code == 404  # another bank's customer's movement reads like a missing one

    r = await env.post("/api/v1/funds/withdrawals", me.key, {"bank_organisation_id": tw.bank_org, "amount": "1234.57"})
    assert r.status_code == 409 and r.json()["type"] == "/problems/insufficient-available"
    r = await env.post("/api/v1/funds/withdrawals", me.key, {"bank_organisation_id": tw.bank_org, "amount": "1000.00"})
    assert r.status_code == 201, r.text
    wd = r.json()
    f = await tw.funds(0)
    assert (f["balance"], f["held"], f["available"]) == ("1234.56", "1000.00", "234.56")
    r = await env.post(f"/api/v1/funds/movements/{wd['id']}/decision", tw.bank, {"decision": "reject"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert (await tw.funds(0))["held"] == "0.00"
    r = await env.post("/api/v1/funds/withdrawals", me.key, {"bank_organisation_id": tw.bank_org, "amount": "234.56"})
    r = await env.post(f"/api/v1/funds/movements/{r.json()['id']}/decision", tw.bank, {"decision": "confirm"})
    assert r.status_code == 200, r.text
    f = await tw.funds(0)
    assert (f["balance"], f["held"], f["available"]) == ("1000.00", "0.00", "1000.00")
    for bad in ("0", "-1", "1.001", "１２", 12.5, "NaN"):
        r = await env.post("/api/v1/funds/deposits", me.key, {"amount": bad})
        assert r.status_code == 422 and r.json()["field"] == "amount", (bad, r.text)
    r = await env.get("/api/v1/funds/movements", me.key)
    assert [m["kind"] for m in r.json()] == ["withdrawal", "withdrawal", "deposit"]
    assert await invariants(env.db) == [] and await env.app.state.trading.reconcile() == []


async def test_a_bank_decides_only_its_own_customers_movements(env) -> None:
    tw = await trading_world(env, mode="continuous", units=0, funds="0")
    me = tw.traders[0]
    # With a second bank registered, a movement must name its bank.
    other_bank = await env.key(Role.BANK, name="另一家银行")
    r = await env.post("/api/v1/funds/deposits", me.key, {"amount": "100.00"})
    assert r.status_code == 422 and r.json()["field"] == "bank_organisation_id", r.text
    body = {"amount": "100.00", "bank_organisation_id": me.organisation_id}
    r = await env.post("/api/v1/funds/deposits", me.key, body)
    assert r.status_code == 422 and r.json()["field"] == "bank_organisation_id"  # not a bank
    r = await env.post("/api/v1/funds/deposits", me.key, {"amount": "100.00", "bank_organisation_id": tw.bank_org})
    assert r.status_code == 201, r.text
    mv = r.json()
    assert mv["bank_organisation_id"] == tw.bank_org
    # The other bank neither sees nor decides it: 404, as for a movement that does not exist.
    r = await env.post(f"/api/v1/funds/movements/{mv['id']}/decision", other_bank, {"decision": "confirm"})
    assert r.status_code == 404 and r.json()["field"] == "movement_id"
    assert mv["id"] not in [m["id"] for m in (await env.get("/api/v1/funds/movements", other_bank)).json()]
    assert (await env.get("/api/v1/funds", me.key)).json()["balance"] == "0.00"
    r = await env.post(f"/api/v1/funds/movements/{mv['id']}/decision", tw.bank, {"decision": "confirm"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert (await env.get("/api/v1/funds", me.key)).json()["balance"] == "100.00"
