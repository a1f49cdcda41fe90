"""The finance bureau's decisions on a claim: the review (the incentives engine recomputes the determination),
the four-eyes approval that commits the budget and opens the public notice (公示), making the approval final
once the notice has passed (by hand, or by the scheduler's sweep), rejection (which releases a committed
budget), and the clawback of a paid subsidy within its window.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Conflict, InvalidInput
from core.identity import Identity, Role
from core.quantity import parse_money_fen
from core.text import clean_text
from core.workdays import is_working_day
from finance import schemas as s
from finance._claims import claim_detail, load_claim, transition
from finance._common import (
    BATCH_SIZE_MAX,
    BUDGET,
    FINANCE_STAFF,
    PAYEE,
    account,
    actor_of,
    dump_json,
    engine_facts_problem,
    load_json,
    param,
    refused,
    require,
)
from finance.context import FinanceContext
from finance.domain import rules
from finance.domain import workflow as wf
from finance.domain.workflow import Action, State
from finance.letters import issue_decision
from finance.models import FinanceBudget, FinanceClaim
from incentives import engine


async def review_claim(ctx: FinanceContext, who: Identity, claim_id: int, req: s.Note) -> s.ClaimOut:
    """Recompute the determination with the incentives engine (as the law stood on the submission day, as
    known today) and attach it; the amount is the programme's headline output."""
    require(who, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    note = clean_text(req.note, "note", max_len=1000, required=False)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        try:
            wf.next_state(claim.state, Action.REVIEW)
        except wf.TransitionRefused as exc:
            raise refused(exc) from None
        on = claim.evaluation_on or today
        try:
            det = ctx.incentives.evaluate(claim.programme, load_json(claim.facts, {}), on, known_on=today)
        except engine.FactsError as exc:
            raise engine_facts_problem(exc, "facts") from None
        except engine.NotInForce as exc:
            raise Conflict(
                "invalid-state", f"The determination cannot be computed: {exc}. Reject the claim with this reason."
            ) from None
        record = det.to_dict()
        amount = int(det.headline_fen) if det.eligible else 0
        await transition(
            uow,
            claim,
            Action.REVIEW,
            who,
            now,
            note=note,
            data={"eligible": det.eligible, "amount_fen": amount, "digest": det.digest()},
            reviewed_by=who.principal_id,
            reviewed_at=now,
            determination=dump_json(record),
            determination_digest=det.digest(),
            eligible=bool(det.eligible),
            amount_fen=amount,
        )
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def _budget_for(ses: AsyncSession, programme: str, year: int) -> FinanceBudget:
    budget = (
        await ses.execute(
            select(FinanceBudget).where(FinanceBudget.programme == programme, FinanceBudget.fiscal_year == year)
        )
    ).scalar_one_or_none()
    if budget is None:
        raise Conflict(
            "budget-missing",
            f"There is no {programme} budget for fiscal year {year}; create and appropriate it first.",
        )
    return budget


async def approve_claim(ctx: FinanceContext, who: Identity, claim_id: int, req: s.Note) -> s.ClaimOut:
    """Four-eyes approval: commit the amount on the programme's budget (a pending ledger transfer) and open
    the public notice. Refused when the approver submitted or reviewed the claim, when the determination is
    not eligible, or when the budget has not enough available."""
    require(who, Role.FINANCE_APPROVER)
    now = ctx.clock.now()
    today = business_date(now)
    note = clean_text(req.note, "note", max_len=1000, required=False)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        try:
            wf.next_state(claim.state, Action.APPROVE)
        except wf.TransitionRefused as exc:
            raise refused(exc) from None
        if who.principal_id in (claim.submitted_by, claim.reviewed_by):
            raise AppError(
                "four-eyes-required",
                "The approver must be a different person from the one who submitted and the one who reviewed "
                "this claim.",
            )
        if not claim.eligible or claim.amount_fen <= 0:
            raise Conflict(
                "claim-not-eligible",
                "The reviewed determination is not eligible (or pays nothing); reject the claim with a reason.",
                extra={"failed_gates": (load_json(claim.determination, {}) or {}).get("failed_gates", [])},
            )
        budget = await _budget_for(ses, claim.programme, today.year)
        window = rules.notice_window(today, int(param("notice_working_days", today)), is_working_day)
        await transition(
            uow,
            claim,
            Action.APPROVE,
            who,
            now,
            note=note,
            data={"amount_fen": claim.amount_fen, "budget_id": budget.id},
            approved_by=who.principal_id,
            approved_at=now,
            notice_first_day=window.first_day,
            notice_last_day=window.last_day,
            due_on=window.last_day,
            budget_id=budget.id,
        )
        source = await account(ses, BUDGET, budget.id or 0)
        payee = await account(ses, PAYEE, claim.enterprise_id)
        try:
            hold = await ledger.create_transfer(
                ses,
                client_id=f"fin:claim:{claim.id}:c{claim.cycle}:commit",
                debit_account_id=source.id or 0,
                credit_account_id=payee.id or 0,
                asset_id=source.asset_id,
                amount=claim.amount_fen,
                code="subsidy_commitment",
                now=now,
                pending=True,
                ref=f"finance_claim:{claim.id}",
                field="amount_fen",
            )
        except AppError as exc:
            if exc.problem.slug != "insufficient-available":
                raise
            available = int(exc.extra.get("available", 0))
            raise Conflict(
                "budget-insufficient",
                f"The {claim.programme} budget for {today.year} has {figures.yuan(available)} yuan available; "
                f"this approval needs {figures.yuan(claim.amount_fen)} yuan. Appropriate more or approve later.",
                field="amount_fen",
                extra={
                    "budget_id": budget.id,
                    "available_fen": available,
                    "requested_fen": claim.amount_fen,
                },
            ) from None
        await ses.execute(
            update(FinanceClaim)
            .where(FinanceClaim.id == claim.id)
            .values(hold_transfer_id=hold.id)
            .execution_options(synchronize_session=False)
        )
        await ses.refresh(claim)
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def finalise_claim(ctx: FinanceContext, who: Identity | None, claim_id: int) -> s.ClaimOut:
    """After the public notice has passed without an upheld objection the approval becomes final and the
    decision letter (决定书) is issued."""
    if who is not None:
        require(who, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        await _finalise(uow, claim, who, now)
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def _finalise(uow: UnitOfWork, claim: FinanceClaim, who: Identity | None, now: dt.datetime) -> None:
    today = business_date(now)
    try:
        wf.next_state(claim.state, Action.FINALISE)
    except wf.TransitionRefused as exc:
        raise refused(exc) from None
    last = claim.notice_last_day
    if last is not None and not today > last:
        raise Conflict(
            "notice-period-running",
            f"The public notice runs until {last.isoformat()}; the approval can be made final from the next day.",
            extra={"notice_last_day": last.isoformat()},
        )
    actor_id = actor_of(who)[0]
    await transition(
        uow,
        claim,
        Action.FINALISE,
        who,
        now,
        decided_by=actor_id,
        decided_at=now,
        decision_facts=claim.facts,
    )
    await issue_decision(uow.session, claim, "decision_letter", "approved", now)


async def finalise_due_claims(ctx: FinanceContext, limit: int = BATCH_SIZE_MAX) -> dict[str, int]:
    """The scheduler's sweep: make final every approval whose notice period has ended."""
    today = ctx.today()

    async def ids(uow: UnitOfWork) -> list[int]:
        q = (
            select(FinanceClaim.id)
            .where(FinanceClaim.state == State.IN_NOTICE.value, FinanceClaim.notice_last_day < today)  # type: ignore[operator]
            .order_by(FinanceClaim.id)
            .limit(limit)
        )
        return [int(i) for i in (await uow.session.execute(q)).scalars()]

    done = skipped = 0
    for claim_id in await ctx.db.read(ids):
        try:
            await finalise_claim(ctx, None, claim_id)
            done += 1
        except AppError:
            # Someone rejected or finalised it in between: that claim is settled either way.
            skipped += 1
    return {"finalised": done, "skipped": skipped}


async def reject_claim(ctx: FinanceContext, who: Identity, claim_id: int, req: s.Reason) -> s.ClaimOut:
    require(who, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    reason = clean_text(req.reason, "reason", max_len=1000)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        held = State(claim.state) in wf.HOLDS_BUDGET and claim.hold_transfer_id is not None
        hold_id = claim.hold_transfer_id
        await transition(
            uow,
            claim,
            Action.REJECT,
            who,
            now,
            note=reason,
            data={"released_fen": claim.amount_fen if held else 0},
            reason=reason,
            decided_by=who.principal_id,
            decided_at=now,
            decision_facts=claim.facts,
        )
        if held and hold_id is not None:
            await ledger.resolve_pending(
                ses,
                client_id=f"fin:claim:{claim.id}:c{claim.cycle}:void",
                pending_id=hold_id,
                now=now,
                post=False,
                code="subsidy_void",
            )
        await issue_decision(ses, claim, "decision_letter", "rejected", now)
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def clawback_claim(ctx: FinanceContext, who: Identity, claim_id: int, req: s.Clawback) -> s.ClaimOut:
    """Recover a disbursed subsidy (in full, or `amount_yuan` of it) within the clawback window: a posted
    ledger transfer from the enterprise's payee account back to the budget, and a clawback decision."""
    require(who, Role.FINANCE_APPROVER)
    now = ctx.clock.now()
    today = business_date(now)
    reason = clean_text(req.reason, "reason", max_len=1000)
    amount_req = parse_money_fen(req.amount_yuan, field="amount_yuan") if req.amount_yuan is not None else None

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        try:
            wf.next_state(claim.state, Action.CLAWBACK)
        except wf.TransitionRefused as exc:
            raise refused(exc) from None
        amount = claim.amount_fen if amount_req is None else amount_req
        if amount > claim.amount_fen:
            raise InvalidInput(
                "amount_yuan", f"At most the {figures.yuan(claim.amount_fen)} yuan paid can be recovered."
            )
        window = int(param("clawback_window_years", today))
        paid_on = business_date(claim.disbursed_at) if claim.disbursed_at else today
        if not rules.clawback_open(paid_on, today, window):
            raise Conflict(
                "clawback-window-closed",
                f"The subsidy was paid on {paid_on.isoformat()}; it can be recovered for {window} years only.",
            )
        await transition(
            uow,
            claim,
            Action.CLAWBACK,
            who,
            now,
            note=reason,
            data={"amount_fen": amount},
            clawed_back_fen=amount,
            reason=reason,
            decided_by=who.principal_id,
            decided_at=now,
        )
        budget = await ses.get(FinanceBudget, claim.budget_id)
        assert budget is not None
        payee = await account(ses, PAYEE, claim.enterprise_id)
        target = await account(ses, BUDGET, budget.id or 0)
        await ledger.create_transfer(
            ses,
            client_id=f"fin:claim:{claim.id}:c{claim.cycle}:clawback",
            debit_account_id=payee.id or 0,
            credit_account_id=target.id or 0,
            asset_id=payee.asset_id,
            amount=amount,
            code="clawback",
            now=now,
            ref=f"finance_claim:{claim.id}",
            field="amount_yuan",
        )
        await issue_decision(ses, claim, "clawback_decision", "clawback", now)
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)
