"""Penalties: fines from a settled compliance period become payable notices (once per obligation) with due
days counted in working days; a bank records payment of exactly the amount due (the late surcharge of
《行政处罚法》第七十二条 accrues after the due day); overdue notices are listed and flagged by the daily job.
The same settled shortfall shows in a bank's green-credit answer as an open compliance shortfall."""

from __future__ import annotations

import datetime as dt

from core.identity import Role
from core.workdays import add_working_days
from tests.finance.kit import BASE as FIN
from tests.finance.kit import org
from tests.finance.test_green_credit import PROJECT, QUERIES
from tests.registry.compliance.kit import (
    BASE,
    allocate_table,
    at,
    carbon_lines,
    carbon_world,
    enterprise,
    report,
    settle,
    surrender,
)

FINE_FEN = 400 * 98_00 * 5  # shortfall 400 t × 98.00 yuan × k = 5


async def test_settled_fines_become_notices_that_a_bank_records_as_paid(env) -> None:
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "九江电厂", "九江", "D4411")
    b = await enterprise(env, cw.reg, "萍乡钢铁", "萍乡", "C3120")
    await allocate_table(
        cw, [{"enterprise_id": a["id"], "quantity": "600"}, {"enterprise_id": b["id"], "quantity": "600"}]
    )
    for ent in (a, b):
        await report(cw, ent, carbon_lines(1000))
        assert (await surrender(cw, ent, 600)).status_code == 201
    r = await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert r.status_code == 200, r.text
    env.clock.set(at("2027-01-01", 1))
    r = await settle(cw)
    assert r.status_code == 200 and r.json()["total_fine_fen"] == 2 * FINE_FEN, r.text

    bureau = await org(env, "江西省财政厅", "finance")
    reviewer = await env.key(Role.FINANCE_REVIEWER, bureau)
    bank_org = await org(env, "中国银行江西省分行", "bank")
    bank = await env.key(Role.BANK, bank_org)

    r = await env.post(f"{FIN}/penalties/issue", reviewer, {"period_id": cw.pid})
    assert r.status_code == 200 and (r.json()["issued"], r.json()["already_issued"]) == (2, 0), r.text
    r = await env.post(f"{FIN}/penalties/issue", reviewer, {})
    assert (r.json()["issued"], r.json()["already_issued"]) == (0, 2)
    out = await env.app.state.scheduler.fire("finance_penalty_notices", "2027-01-01")
    assert out.result == {"issued": 0, "already_issued": 2}

    [mine] = (await env.get(f"{FIN}/penalties", a["key"])).json()
    issued_on = dt.date(2027, 1, 1)
    expected_due = add_working_days(issued_on, 15)
    assert (mine["fine_fen"], mine["status"], mine["issued_on"]) == (FINE_FEN, "unpaid", "2027-01-01")
    assert mine["due_on"] >= expected_due.isoformat() and mine["amount_due_fen"] == FINE_FEN
    assert mine["fine_yuan"] == "196000.00" and mine["period_code"] == cw.code
    assert len((await env.get(f"{FIN}/penalties", reviewer)).json()) == 2
    assert (await env.get(f"{FIN}/penalties", bank)).status_code == 403

    pay = f"{FIN}/penalties/{mine['id']}/payments"
    body = {"notice_no": mine["notice_no"], "amount_yuan": "196000.00", "bank_reference": "BOC-20270105-001"}
    r = await env.post(pay, bank, dict(body, notice_no="FK20270101-00000000"))
    assert r.status_code == 404  # a notice is paid by its number, never by guessing ids
    r = await env.post(pay, bank, dict(body, amount_yuan="195999.99"))
    assert r.status_code == 422 and r.json()["type"] == "/problems/payment-amount-mismatch"
    assert r.json()["amount_due_fen"] == FINE_FEN
    r = await env.post(pay, a["key"], body)
    assert r.status_code == 403
    env.clock.set(at("2027-01-05"))
    r = await env.post(pay, bank, body, idem="pay-1")
    assert r.status_code == 201 and r.json()["status"] == "paid" and r.json()["paid_fen"] == FINE_FEN, r.text
    again = await env.post(pay, bank, body, idem="pay-1")
    assert again.headers.get("idempotent-replayed") == "true"
    r = await env.post(pay, bank, body)
    assert r.status_code == 409 and r.json()["type"] == "/problems/penalty-already-paid"

    # The other notice is not paid in time: listed as overdue, flagged once, and owes the late surcharge.
    [theirs] = (await env.get(f"{FIN}/penalties?status=unpaid", b["key"])).json()
    due = dt.date.fromisoformat(theirs["due_on"])
    env.clock.set(at((due + dt.timedelta(days=2)).isoformat()))
    overdue = (await env.get(f"{FIN}/penalties?status=overdue", reviewer)).json()
    assert [p["id"] for p in overdue] == [theirs["id"]]
    late = overdue[0]
    assert (late["days_late"], late["surcharge_fen"]) == (2, FINE_FEN * 6 // 100)
    assert late["amount_due_fen"] == FINE_FEN + FINE_FEN * 6 // 100
    assert [p["id"] for p in (await env.get(f"{FIN}/penalties?status=paid", reviewer)).json()] == [mine["id"]]
    assert (await env.get(f"{FIN}/penalties?status=unpaid", reviewer)).json() == []
    key = (due + dt.timedelta(days=2)).isoformat()
    out = await env.app.state.scheduler.fire("finance_overdue_penalties", key)
    assert out.result == {"marked_overdue": 1}
    assert (await env.app.state.finance.mark_overdue_penalties(key)) == {"marked_overdue": 0}
    r = await env.post(
        f"{FIN}/penalties/{theirs['id']}/payments",
        bank,
        {"notice_no": theirs["notice_no"], "amount_yuan": str(late["amount_due_fen"] // 100), "bank_reference": "B-2"},
    )
    assert r.status_code == 201 and r.json()["paid_fen"] == late["amount_due_fen"], r.text

    # A bank the enterprise consented to sees the open shortfall in its green-credit answer.
    r = await env.post(
        f"{FIN}/consents", b["key"], {"enterprise_id": b["id"], "bank_organisation_id": bank_org, "purpose": "技改贷款"}
    )
    assert r.status_code == 201, r.text
    r = await env.post(QUERIES, bank, {"enterprise_id": b["id"], "purpose": "技改贷款", "project_facts": PROJECT})
    assert r.status_code == 201, r.text
    answer = r.json()["answer"]
    assert answer["compliance"]["open_shortfall"] is True and answer["compliance"]["carbon_open_shortfall_t"] == 400
    assert answer["green_loan"]["eligible"] is False and "carbon_compliant" in answer["green_loan"]["failed_gates"]
