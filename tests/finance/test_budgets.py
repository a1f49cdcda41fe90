"""Programme budgets on the ledger: concurrent approvals never overspend, the figures come from the ledger, and
the disbursement job pays each final approval exactly once and writes the payment file."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from core import ledger
from core.db import UnitOfWork
from core.identity import Identity, authenticate_api_key
from finance import claims, claims_review, disbursement
from finance import schemas as s
from tests.finance.kit import BASE, FS_AMOUNT_FEN, FW, at, budget, claim_body, finance_world


async def ident(env: Any, key: str) -> Identity:
    async def work(uow: UnitOfWork) -> Identity | None:
        return await authenticate_api_key(uow.session, key)

    who = await env.db.read(work)
    assert who is not None
    return who  # type: ignore[no-any-return]


async def reviewed_claims(fw: FW, n: int) -> list[int]:
    """n first-set claims of one enterprise, submitted, checked and reviewed through the use cases (quicker)."""
    fin = fw.env.app.state.finance.ctx
    emitter, reviewer, reviewer2 = [await ident(fw.env, k) for k in (fw.ents[0]["key"], fw.reviewer, fw.reviewer2)]
    ids = []
    for i in range(n):
        c = await claims.submit_claim(fin, emitter, s.SubmitClaim(**claim_body(fw.ents[0], f"C-{i}")))
        await claims.formal_check(fin, reviewer, c.id, s.FormalCheck(passed=True))
        await claims_review.review_claim(fin, reviewer2, c.id, s.Note())
        ids.append(c.id)
    return ids


async def invariants(env: Any) -> list[str]:
    async def work(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    return await env.db.read(work)  # type: ignore[no-any-return]


async def test_twenty_concurrent_approvals_against_a_budget_for_ten_approve_exactly_ten(env) -> None:
    fw = await finance_world(env, 1)
    b = await budget(fw, str(10 * FS_AMOUNT_FEN // 100))
    ids = await reviewed_claims(fw, 20)
    responses = await asyncio.gather(*(env.post(f"{BASE}/claims/{i}/approval", fw.approver, {}) for i in ids))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 10 + [409] * 10, [r.text for r in responses if r.status_code not in (200, 409)]
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {p["type"] for p in refused} == {"/problems/budget-insufficient"}
    assert all(p["requested_fen"] == FS_AMOUNT_FEN and p["available_fen"] < FS_AMOUNT_FEN for p in refused)
    got = (await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)).json()
    assert (got["committed_fen"], got["available_fen"]) == (10 * FS_AMOUNT_FEN, 0)
    states = [(await env.get(f"{BASE}/claims/{i}", fw.auditor)).json()["state"] for i in ids]
    assert sorted(states) == ["in_notice"] * 10 + ["reviewed"] * 10
    assert await invariants(env) == []

    # The refused ones approve once money is appropriated; the problem said what was missing.
    await env.post(f"{BASE}/budgets/{b['id']}/appropriations", fw.approver, {"amount_yuan": "1200000"})
    waiting = [i for i, st in zip(ids, states, strict=True) if st == "reviewed"]
    r = await env.post(f"{BASE}/claims/{waiting[0]}/approval", fw.approver, {})
    assert r.status_code == 200, r.text
    r = await env.post(f"{BASE}/claims/{waiting[1]}/approval", fw.approver, {})
    assert r.status_code == 409 and r.json()["available_fen"] == 0


async def test_approval_needs_a_budget_and_appropriations_are_exact(env) -> None:
    fw = await finance_world(env, 1)
    [cid] = await reviewed_claims(fw, 1)
    r = await env.post(f"{BASE}/claims/{cid}/approval", fw.approver, {})
    assert r.status_code == 409 and r.json()["type"] == "/problems/budget-missing", r.text
    r = await env.post(f"{BASE}/budgets", fw.approver, {"programme": "first_set_insurance", "fiscal_year": 2026})
    assert r.status_code == 201
    bid = r.json()["id"]
    r = await env.post(f"{BASE}/budgets", fw.approver, {"programme": "first_set_insurance", "fiscal_year": 2026})
    assert r.status_code == 409 and r.json()["type"] == "/problems/duplicate"
    for bad in ("1.234", "-5", "0", 1.5, "1e3", "１２"):
        r = await env.post(f"{BASE}/budgets/{bid}/appropriations", fw.approver, {"amount_yuan": bad})
        assert r.status_code == 422 and r.json()["field"] == "amount_yuan", (bad, r.text)
    r = await env.post(f"{BASE}/budgets/{bid}/appropriations", fw.reviewer, {"amount_yuan": "1"})
    assert r.status_code == 403
    # The same Idempotency-Key replays the first answer: one appropriation, not two.
    first = await env.post(f"{BASE}/budgets/{bid}/appropriations", fw.approver, {"amount_yuan": "0.01"}, idem="appr-1")
    again = await env.post(f"{BASE}/budgets/{bid}/appropriations", fw.approver, {"amount_yuan": "0.01"}, idem="appr-1")
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    assert (await env.get(f"{BASE}/budgets/{bid}", fw.auditor)).json()["appropriated_fen"] == 1
    r = await env.get(f"{BASE}/budgets?fiscal_year=2026", fw.reviewer)
    assert [x["id"] for x in r.json()] == [bid]
    assert (await env.get(f"{BASE}/budgets/{bid}", fw.ents[0]["key"])).status_code == 403


async def test_the_scheduler_finalises_notices_and_pays_each_approval_once(env) -> None:
    fw = await finance_world(env, 1)
    b = await budget(fw, "100000000")
    ids = await reviewed_claims(fw, 3)
    for i in ids:
        r = await env.post(f"{BASE}/claims/{i}/approval", fw.approver, {})
        assert r.status_code == 200, r.text
    sched = env.app.state.scheduler
    out = await sched.fire("finance_finalise_notices", "2026-03-06")
    assert out.result == {"finalised": 0, "skipped": 0}  # the notice runs until 6 March
    env.clock.set(at("2026-03-09", 1))
    out = await sched.fire("finance_finalise_notices", "2026-03-09")
    assert out.result == {"finalised": 3, "skipped": 0}
    out = await sched.fire("finance_finalise_notices", "2026-03-09")
    assert not out.ran  # claimed once per day

    out = await sched.fire("finance_disbursement_batch", "2026-03-08")  # a Sunday
    assert out.result == {"skipped": "2026-03-08 is not a working day"}
    # Two schedulers firing the same day, and an operator's batch at the same moment: each claim paid once.
    fin = env.app.state.finance.ctx
    approver = await ident(env, fw.approver)
    results = await asyncio.gather(
        sched.fire("finance_disbursement_batch", "2026-03-09"),
        sched.fire("finance_disbursement_batch", "2026-03-09"),
        disbursement.disburse_claims(fin, approver, s.DisburseClaims(), "operator-batch"),
        return_exceptions=True,
    )
    assert not [x for x in results if isinstance(x, BaseException)], results
    batches = (await env.get(f"{BASE}/disbursements", fw.auditor)).json()
    paid = sorted(i for batch in batches for i in batch["claim_ids"])
    assert paid == sorted(ids)
    got = (await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)).json()
    assert (got["committed_fen"], got["disbursed_fen"]) == (0, 3 * FS_AMOUNT_FEN)
    lines = []
    for batch in batches:
        r = await env.get(f"{BASE}/disbursements/{batch['id']}/payment-file.csv", fw.reviewer)
        lines += list(csv.DictReader(io.StringIO(r.text)))
    assert sum(int(x["amount_fen"]) for x in lines) == 3 * FS_AMOUNT_FEN and len(lines) == 3
    assert await invariants(env) == []
