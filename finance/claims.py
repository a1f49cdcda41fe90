"""Subsidy claims from the enterprise's side and the finance bureau's first look: reading claims, submitting one
(or keeping it as a draft), submitting it again after a return or a rejection (recording what changed since
the last decision), and the formal check that passes a claim on or returns it for correction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from core.clock import SHANGHAI, business_date
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput
from core.identity import Identity, Role
from core.text import clean_text
from finance import schemas as s
from finance._claims import claim_detail, claim_out, load_claim, transition
from finance._common import (
    FINANCE_STAFF,
    LIST_LIMIT_MAX,
    SEES_ALL_CLAIMS,
    dump_json,
    engine_facts_problem,
    enterprise,
    load_json,
    param,
    refused,
    require,
)
from finance.context import FinanceContext
from finance.domain import rules
from finance.domain import workflow as wf
from finance.domain.workflow import Action, State
from finance.models import FinanceClaim
from incentives import engine
from incentives.service import facts_problem
from registry.models import Enterprise

CLAIM_SORTS = ("-id", "submitted_at", "-submitted_at", "amount", "-amount")


def start_of_day(day: dt.date) -> dt.datetime:
    """00:00 of a business date in Asia/Shanghai, as an aware moment."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def _programme_facts(programme: str) -> set[str]:
    described = engine.get_programme(programme)
    return {str(f["name"]) for f in described["facts"]}  # type: ignore[index, union-attr]


def _check_claim_facts(ctx: FinanceContext, programme: str, facts: dict[str, Any], on: dt.date) -> None:
    """The facts must be the programme's own and well-formed; the review recomputes the determination."""
    if programme not in param("claimable_programmes", on):
        raise InvalidInput(
            "programme",
            f"Claims are taken for {', '.join(param('claimable_programmes', on))}; {programme!r} is not one.",
        )
    known = _programme_facts(programme)
    unknown = sorted(set(facts) - known)
    if unknown:
        raise facts_problem([(k, f"is not a fact of {programme}") for k in unknown])
    try:
        ctx.incentives.evaluate(programme, facts, on, known_on=on)
    except engine.FactsError as exc:
        raise engine_facts_problem(exc, "facts") from None
    except engine.NotInForce as exc:
        raise InvalidInput("programme", f"{programme} cannot be evaluated on {on.isoformat()}: {exc}.") from None


async def get_claim(ctx: FinanceContext, who: Identity, claim_id: int) -> s.ClaimOut:
    today = ctx.today()

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        return await claim_detail(uow.session, await load_claim(uow.session, who, claim_id), today)

    return await ctx.db.read(work)


async def list_claims(
    ctx: FinanceContext,
    who: Identity,
    *,
    state: str | None = None,
    programme: str | None = None,
    enterprise_id: int | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    before_id: int | None = None,
    city: str | None = None,
    amount_min_fen: int | None = None,
    amount_max_fen: int | None = None,
    submitted_from: dt.date | None = None,
    submitted_to: dt.date | None = None,
    sort: str = "-id",
    offset: int = 0,
) -> s.ClaimPage:
    """Claims visible to `who`, filtered in the query. `sort` is one of CLAIM_SORTS; the default (newest first) pages
    with `before_id`, any other order with `offset` (then `next_before_id` is None and `next_offset` says where the
    next page starts). Submission dates are business dates in Asia/Shanghai, both ends included."""
    today = ctx.today()
    limit = max(1, min(limit, LIST_LIMIT_MAX))
    if sort not in CLAIM_SORTS:
        raise InvalidInput("sort", f"Sort by one of {', '.join(CLAIM_SORTS)}.")
    if sort != "-id" and before_id is not None:
        raise InvalidInput("before_id", "before_id pages the default order; with another sort use offset.")
    if amount_min_fen is not None and amount_max_fen is not None and amount_min_fen > amount_max_fen:
        raise InvalidInput("amount_min", "The lower bound is above the upper bound.")
    if submitted_from is not None and submitted_to is not None and submitted_from > submitted_to:
        raise InvalidInput("submitted_from", "The first day is after the last day.")

    async def work(uow: UnitOfWork) -> s.ClaimPage:
        q = select(FinanceClaim)
        if city is not None:
            q = q.join(Enterprise, Enterprise.id == FinanceClaim.enterprise_id).where(Enterprise.city == city)
        if amount_min_fen is not None:
            q = q.where(FinanceClaim.amount_fen >= amount_min_fen)
        if amount_max_fen is not None:
            q = q.where(FinanceClaim.amount_fen <= amount_max_fen)
        if submitted_from is not None:
            q = q.where(FinanceClaim.submitted_at >= start_of_day(submitted_from))  # type: ignore[operator]
        if submitted_to is not None:
            q = q.where(FinanceClaim.submitted_at < start_of_day(submitted_to + dt.timedelta(days=1)))  # type: ignore[operator]
        if who.role not in SEES_ALL_CLAIMS:
            q = q.where(FinanceClaim.enterprise_organisation_id == who.organisation_id)
        if state is not None:
            q = q.where(FinanceClaim.state == state)
        if programme is not None:
            q = q.where(FinanceClaim.programme == programme)
        if enterprise_id is not None:
            q = q.where(FinanceClaim.enterprise_id == enterprise_id)
        if overdue is True:
            q = q.where(FinanceClaim.due_on.is_not(None), FinanceClaim.due_on < today)  # type: ignore[union-attr]
        elif overdue is False:
            q = q.where(or_(FinanceClaim.due_on.is_(None), FinanceClaim.due_on >= today))  # type: ignore[union-attr]
        if before_id is not None:
            q = q.where(FinanceClaim.id < before_id)  # type: ignore[operator]
        column = {"id": FinanceClaim.id, "submitted_at": FinanceClaim.submitted_at, "amount": FinanceClaim.amount_fen}[
            sort.lstrip("-")
        ]
        order = [column.desc() if sort.startswith("-") else column.asc()]  # type: ignore[union-attr]
        if sort.lstrip("-") != "id":
            order.append(FinanceClaim.id.desc())  # type: ignore[union-attr]
        q = q.order_by(*order).limit(limit + 1)
        if sort != "-id":
            q = q.offset(offset)
        rows = list((await uow.session.execute(q)).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return s.ClaimPage(
            items=[claim_out(c, today) for c in rows],
            next_before_id=(rows[-1].id if more and rows and sort == "-id" else None),
            next_offset=(offset + limit if more and sort != "-id" else None),
        )

    return await ctx.db.read(work)


async def submit_claim(
    ctx: FinanceContext, who: Identity, req: s.SubmitClaim, request_key: str | None = None
) -> s.ClaimOut:
    require(who, Role.EMITTER, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    project_ref = clean_text(req.project_ref, "project_ref", max_len=100)
    period = clean_text(req.period, "period", max_len=20)
    payee_bank = clean_text(req.payee_bank, "payee_bank", max_len=200)
    account_no = _account_no(req.payee_account_no)
    _check_claim_facts(ctx, req.programme, req.facts, today)
    ent = await enterprise(ctx, who, req.enterprise_id)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = FinanceClaim(
            enterprise_id=ent.id,
            enterprise_organisation_id=ent.organisation_id,
            enterprise_name=ent.name,
            enterprise_uscc=ent.uscc,
            programme=req.programme,
            project_ref=project_ref,
            period=period,
            facts=dump_json(req.facts),
            payee_bank=payee_bank,
            payee_account_no=account_no,
            state=State.DRAFT.value,
            state_changed_at=now,
            submitted_by=who.principal_id,
            created_at=now,
        )
        try:
            async with ses.begin_nested():
                ses.add(claim)
                await ses.flush()
        except IntegrityError:
            raise Conflict(
                "duplicate",
                f"{ent.name} already has a {req.programme} claim for project {project_ref} and period {period}.",
                field="project_ref",
            ) from None
        uow.audit(
            who.actor,
            "claim.create",
            "finance_claim",
            str(claim.id),
            {"programme": req.programme, "enterprise_id": ent.id, "project_ref": project_ref, "period": period},
        )
        if not req.draft:
            await transition(
                uow,
                claim,
                Action.SUBMIT,
                who,
                now,
                submitted_at=now,
                evaluation_on=today,
                submitted_by=who.principal_id,
            )
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def resubmit_claim(ctx: FinanceContext, who: Identity, claim_id: int, req: s.ResubmitClaim) -> s.ClaimOut:
    require(who, Role.EMITTER, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    note = clean_text(req.note, "note", max_len=1000, required=False)
    payee_bank = clean_text(req.payee_bank, "payee_bank", max_len=200) if req.payee_bank is not None else None
    account_no = _account_no(req.payee_account_no) if req.payee_account_no is not None else None

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        wf_state = State(claim.state)
        try:
            wf.next_state(wf_state, Action.SUBMIT)
        except wf.TransitionRefused as exc:
            raise refused(exc) from None
        facts = req.facts if req.facts is not None else load_json(claim.facts, {})
        _check_claim_facts(ctx, claim.programme, facts, today)
        before = load_json(claim.decision_facts)
        changes = [c.to_dict() for c in rules.facts_diff(before, facts)] if before is not None else []
        values: dict[str, Any] = {
            "facts": dump_json(facts),
            "changes": dump_json(changes),
            "submitted_by": who.principal_id,
            "submitted_at": now,
            "evaluation_on": today,
        }
        if payee_bank is not None:
            values["payee_bank"] = payee_bank
        if account_no is not None:
            values["payee_account_no"] = account_no
        if wf_state != State.DRAFT:
            # A new round: the previous round's check, review, approval and budget hold belong to history
            # (the events and documents keep them), and the new round's ledger ids carry the new cycle.
            values.update(
                cycle=claim.cycle + 1,
                checked_by=None,
                reviewed_by=None,
                reviewed_at=None,
                determination=None,
                determination_digest=None,
                eligible=None,
                amount_fen=0,
                approved_by=None,
                approved_at=None,
                notice_first_day=None,
                notice_last_day=None,
                budget_id=None,
                hold_transfer_id=None,
                reason="",
            )
        await transition(
            uow,
            claim,
            Action.SUBMIT,
            who,
            now,
            note=note,
            data={"resubmission": wf_state != State.DRAFT, "changes": changes},
            **values,
        )
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


async def formal_check(ctx: FinanceContext, who: Identity, claim_id: int, req: s.FormalCheck) -> s.ClaimOut:
    require(who, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    reason = clean_text(req.reason, "reason", max_len=1000, required=not req.passed)

    async def work(uow: UnitOfWork) -> s.ClaimOut:
        ses = uow.session
        claim = await load_claim(ses, who, claim_id)
        if req.passed:
            await transition(uow, claim, Action.PASS_FORMAL_CHECK, who, now, note=reason, checked_by=who.principal_id)
        else:
            await transition(
                uow,
                claim,
                Action.RETURN_FOR_CORRECTION,
                who,
                now,
                note=reason,
                checked_by=who.principal_id,
                reason=reason,
                decided_by=who.principal_id,
                decided_at=now,
                decision_facts=claim.facts,
            )
        return await claim_detail(ses, claim, today)

    return await ctx.db.run(work)


def _account_no(value: str) -> str:
    """A bank account number as printed: 8 to 32 ASCII digits, optionally grouped by single spaces."""
    compact = value.replace(" ", "")
    if not (8 <= len(compact) <= 32 and compact.isascii() and compact.isdigit()):
        raise InvalidInput("payee_account_no", "Give the bank account number as 8 to 32 digits.")
    return compact
