"""The fiscal and financial side of the simulated year, through the API: tax reliefs evaluated (R&D super deduction
and the equipment credit, whose determination finance staff approve as the credit position), subsidy claims
(first-set insurance, the Jiangxi first-set reward, first-batch materials) through formal check, review, approval
by a third person (four-eyes), the public notice, finalisation and disbursement out of the programme's budget,
green-credit queries of banks under the enterprise's consent, and penalty notices for the settled fines, paid
through the banks.

Claims are made in the first days: their due dates are counted in working days, and the published holiday calendar
(core/holidays.yaml) may end soon after the simulated year's last days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from greenrights.client import ApiError
from server.simulate.common import Enterprise, Run, yuan


async def budgets_for_now(run: Run) -> None:
    """Claims are paid from the budget of the fiscal year of the approval day. The sandbox's year runs on today's
    calendar, so the finance approver creates and appropriates that fiscal year's budget of each programme with the
    scenario's amounts when it has none."""
    approver = run.world.authority("finance_approver")
    fiscal = run.start.year
    have = {(b.programme, b.fiscal_year) for b in await approver.call("listBudgets")}
    for b in run.world.sc.budgets:
        if (b["programme"], fiscal) in have:
            continue
        name = str(b["name"]).replace(str(b["fiscal_year"]), str(fiscal))
        made = await approver.call("createBudget", {"programme": b["programme"], "fiscal_year": fiscal, "name": name})
        await approver.call(
            "appropriateBudget",
            {"amount_yuan": str(b["amount_yuan"]), "reference": f"模拟 {fiscal} 预算"},
            budget_id=made.id,
        )
        run.counts["budgets_created"] += 1


def _claim_facts(run: Run, programme: str, n: int) -> dict[str, Any]:
    """Facts of a claim of `programme`, varied by the seed (the worked examples of docs/incentives.md as the base)."""
    rng, today = run.rng, run.start
    if programme == "first_set_insurance":
        insured = rng.choice((30_000_000, 50_000_000, 80_000_000)) * 100
        first = today.replace(year=today.year - 1)
        return {
            "fs_catalogue_code": "FS2024-01",
            "fs_first_insured_on": first.isoformat(),
            "fs_compensated_policy_years": "1",
            "fs_insured_value_fen": insured,
            "fs_premium_rate_bp": 400,
            "fs_premium_paid_fen": insured * 4 // 100,
        }
    if programme == "jx_first_set_reward":
        return {"jx_recognised": True, "jx_item_sales_fen": rng.choice((20_000_000, 40_000_000)) * 100}
    return {
        "fb_catalogue_code": "FB2024-05",
        "fb_contract_on": (today - dt.timedelta(days=90)).isoformat(),
        "fb_contract_fen": rng.choice((8_000_000, 12_000_000)) * 100,
        "fb_buyer_is_end_user": True,
        "fb_related_party": False,
        "fb_insured_value_fen": 10_000_000 * 100,
        "fb_premium_rate_bp": 300,
    }


async def submit_claims(run: Run) -> None:
    """Claims of a few enterprises (seeded), checked, reviewed and approved on the first day; one claim is first
    returned for correction and resubmitted."""
    programmes = ["first_set_insurance", "first_set_insurance", "jx_first_set_reward", "first_batch_materials"]
    claimants = sorted(run.rng.sample(run.enterprises, min(len(programmes), len(run.enterprises))), key=_order)
    reviewer, approver = run.world.authority("finance_reviewer"), run.world.authority("finance_approver")
    for n, (e, programme) in enumerate(zip(claimants, programmes, strict=False)):
        body = {
            "enterprise_id": e.enterprise_id,
            "programme": programme,
            "project_ref": f"SIM-{run.year}-{n + 1:03d}",
            "period": str(run.year),
            "facts": _claim_facts(run, programme, n),
            "payee_bank": run.world.sc.banks[_bank(run, e)],
            "payee_account_no": f"6217 0000 {n + 1:04d} 0001",
        }
        try:
            claim = await run.client(e).call("submitClaim", body)
        except ApiError as exc:
            run.notes.append(f"claim {programme} of {e.uscc} refused: {exc.slug} {exc.detail[:120]}")
            continue
        run.counts["claims"] += 1
        try:
            if n == 0:
                await reviewer.call(
                    "formalCheckClaim", {"passed": False, "reason": "缺少保单复印件"}, claim_id=claim.id
                )
                await run.client(e).call(
                    "resubmitClaim", {"facts": body["facts"], "note": "补交保单复印件"}, claim_id=claim.id
                )
                run.counts["claims_returned"] += 1
            await reviewer.call("formalCheckClaim", {"passed": True}, claim_id=claim.id)
            # The reviewer reviews; the approver, who neither submitted nor reviewed it, approves (four-eyes).
            reviewed = await reviewer.call("reviewClaim", {"note": "复核无误"}, claim_id=claim.id)
            if not reviewed.eligible:
                run.notes.append(f"claim {programme} of {e.uscc}: not eligible ({reviewed.failed_gates})")
                continue
            await approver.call("approveClaim", {}, claim_id=claim.id)
            run.claims.append(claim.id)
        except ApiError as exc:
            run.notes.append(f"claim {programme} of {e.uscc} stopped: {exc.slug} {exc.detail[:160]}")


def _order(e: Enterprise) -> str:
    return e.uscc


def _bank(run: Run, e: Enterprise) -> str:
    return next((x.bank for x in run.world.sc.emitters if x.uscc == e.uscc), next(iter(run.world.sc.banks)))


async def finalise_and_disburse(run: Run) -> None:
    """After the public notice: finalise what the nightly job has not, then pay in one batch (the budget's
    commitment posted), and read the payment file for the bank."""
    reviewer, approver = run.world.authority("finance_reviewer"), run.world.authority("finance_approver")
    for cid in run.claims:
        claim = await reviewer.call("getClaim", claim_id=cid)
        if claim.state == "in_notice":
            try:
                await reviewer.call("finaliseClaim", {}, claim_id=cid)
            except ApiError as exc:
                run.notes.append(f"claim {cid} not finalised: {exc.slug}")
    ready = [cid for cid in run.claims if (await reviewer.call("getClaim", claim_id=cid)).state == "approved"]
    if not ready:
        return  # still in their notice, or paid already by the scheduler's daily batch
    try:
        batch = await approver.call("disburseClaims", {"claim_ids": ready})
    except ApiError as exc:
        if exc.slug != "claim-transition-refused":
            raise
        return  # the scheduler's daily batch (10:00 on working days) paid them meanwhile
    run.counts["disbursed_claims"] += batch.line_count
    paid = await approver.call("downloadPaymentFile", batch_id=batch.id)
    run.counts["payment_file_rows"] += max(0, len(bytes(paid).decode("utf-8-sig").strip().splitlines()) - 1)


async def tax_reliefs(run: Run) -> None:
    """R&D super deduction and the equipment credit of a few enterprises, evaluated; each equipment credit
    determination is approved by finance staff as the enterprise's credit position for the tax year."""
    reviewer = run.world.authority("finance_reviewer")
    for e in sorted(run.rng.sample(run.enterprises, min(3, len(run.enterprises))), key=_order):
        core = run.rng.choice((5_000_000, 7_200_000, 12_000_000))
        facts = {
            "total_revenue_yuan": str(core * 14),
            "rd_core_costs_yuan": str(core),
            "rd_other_costs_yuan": str(core // 8),
            "equipment_catalogue_code": "ES-01",
            "equipment_acquired_on": f"{run.year}-05-01",
            "equipment_invoice_yuan": "1130000.00",
            "equipment_deductible_vat_yuan": "130000.00",
            "cit_payable_yuan": "60000.00",
        }
        body = {
            "enterprise_id": e.enterprise_id,
            "on": f"{run.year}-12-31",
            "facts": facts,
            "programmes": ["rd_super_deduction", "equipment_credit"],
        }
        try:
            answer = await run.client(e).call("evaluateEligibility", body)
        except ApiError as exc:
            run.notes.append(f"tax reliefs of {e.uscc}: {exc.slug} {exc.detail[:160]}")
            continue
        run.counts["evaluations"] += 1
        for d in _get(answer, "determinations"):
            if _get(d, "programme") == "equipment_credit" and _get(d, "eligible"):
                await reviewer.call(
                    "approveCreditPosition", {"note": "模拟：年度抵免额度"}, determination_id=_get(d, "id")
                )
                run.counts["credit_positions"] += 1


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


async def green_credit(run: Run) -> None:
    """A few enterprises consent to their bank, which asks about them and a green-loan project (the compliance
    shortfall comes from the registry); then one revokes, and the bank's next query is refused as for an unknown
    enterprise."""
    chosen = sorted(run.rng.sample(run.enterprises, min(3, len(run.enterprises))), key=_order)
    banks = {b.name: b.organisation_id for b in await run.client(chosen[0]).call("listBanks")}
    last = None
    for e in chosen:
        code = _bank(run, e)
        bank_org = banks[run.world.sc.banks[code]]
        consent = await run.client(e).call(
            "grantConsent",
            {"enterprise_id": e.enterprise_id, "bank_organisation_id": bank_org, "purpose": "节能改造项目贷款审批"},
        )
        run.counts["consents"] += 1
        facts = {
            "loan_approved_on": run.start.isoformat(),
            "green_activity": "industrial_energy_retrofit",
            "loan_principal_fen": 50_000_000 * 100,
            "industrial_structure_class": "permitted",
            "baseline_emissions_t": e.emissions_t,
            "project_emissions_t": e.emissions_t * 97 // 100,
            "co2_method": "核算指南 燃料燃烧排放",
            "carbon_tool_field": "energy_saving",
            "lender_eligible": True,
        }
        body = {
            "enterprise_id": e.enterprise_id,
            "purpose": "贷前审查",
            "project_ref": f"GL-{e.uscc[-6:]}",
            "project_facts": facts,
        }
        try:
            await run.world.bank(code).call("queryGreenCredit", body)
            run.counts["green_credit_queries"] += 1
        except ApiError as exc:
            run.notes.append(f"green-credit query about {e.uscc}: {exc.slug} {exc.detail[:160]}")
        last = (e, code, consent)
    if last is not None:
        e, code, consent = last
        await run.client(e).call("revokeConsent", consent_id=consent.id)
        try:
            await run.world.bank(code).call(
                "queryGreenCredit", {"enterprise_id": e.enterprise_id, "purpose": "贷后检查"}
            )
            run.notes.append("a query after the consent was revoked was answered")
        except ApiError as exc:
            run.counts[f"green_credit_refused:{exc.slug}"] += 1


async def penalties(run: Run) -> None:
    """The finance bureau issues payable notices for the settled fines; the enterprises' banks pay them, one first
    at a wrong amount (refused)."""
    reviewer = run.world.authority("finance_reviewer")
    try:
        out = await reviewer.call("issuePenaltyNotices", {"period_id": run.period.id})
        run.counts["penalty_notices"] += out.issued + out.already_issued
    except ApiError as exc:
        run.notes.append(f"penalty notices not issued: {exc.slug} ({exc.detail[:200]})")
        return
    by_id = {e.enterprise_id: e for e in run.enterprises}
    notices = sorted(await reviewer.call("listPenalties"), key=lambda p: p.enterprise_uscc)
    for n, p in enumerate(notices):
        e = by_id.get(p.enterprise_id)
        if e is None or p.status != "unpaid":
            continue
        bank = run.world.bank(_bank(run, e))
        due = int(p.amount_due_fen)
        if n == 0:
            wrong = {"notice_no": p.notice_no, "amount_yuan": yuan(due // 2), "bank_reference": f"SIM-{n}-A"}
            try:
                await bank.call("recordPenaltyPayment", wrong, penalty_id=p.id)
            except ApiError as exc:
                run.counts[f"penalty_refused:{exc.slug}"] += 1
        body = {"notice_no": p.notice_no, "amount_yuan": yuan(due), "bank_reference": f"SIM-{n}"}
        try:
            await bank.call("recordPenaltyPayment", body, penalty_id=p.id)
            run.counts["penalties_paid"] += 1
        except ApiError as exc:
            run.notes.append(f"penalty {p.notice_no} not paid: {exc.slug} {exc.detail[:160]}")
