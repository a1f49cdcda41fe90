"""Penalty notices for compliance fines: a payable notice for every settled fine (once per obligation), the
notices with the amount due today (fine and late surcharge), a bank's record of payment (a posted ledger
transfer into fine revenue), and the scheduler's daily mark of overdue notices.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select, update

from core import figures, ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Conflict, NotFound
from core.events import emit
from core.identity import Identity, Role
from core.quantity import parse_money_fen
from core.text import clean_text
from core.workdays import is_working_day
from finance import schemas as s
from finance._common import (
    FINANCE_STAFF,
    FINE_PAYER,
    FINE_REVENUE,
    LIST_LIMIT_MAX,
    READER,
    account,
    actor_of,
    param,
    require,
)
from finance.context import FinanceContext
from finance.domain import rules
from finance.models import FinancePenalty


async def issue_penalty_notices(ctx: FinanceContext, who: Identity | None, period_id: int | None = None) -> s.IssueOut:
    """Turn every settled compliance fine (of one period, or all) into a payable notice, once per obligation.
    The due day is N working days after issue, and never earlier than the day the settlement set."""
    if who is not None:
        require(who, *FINANCE_STAFF)
    now = ctx.clock.now()
    today = business_date(now)
    fines = await ctx.compliance.list_fines(period_id)
    actor = actor_of(who)[2]

    async def existing(uow: UnitOfWork) -> set[tuple[int, int]]:
        rows = await uow.session.execute(select(FinancePenalty.period_id, FinancePenalty.obligation_id))
        return {(int(p), int(o)) for p, o in rows.all()}

    have = await ctx.db.read(existing)
    new = [f for f in fines if (f.period_id, f.obligation_id) not in have]
    orgs: dict[int, int] = {}
    for f in new:
        if f.enterprise_id not in orgs:
            ent = await ctx.registry.get_enterprise(READER, f.enterprise_id)
            orgs[f.enterprise_id] = ent.organisation_id
    days = int(param("penalty_payment_working_days", today))
    due = rules.add_working_days(today, days, is_working_day)

    async def work(uow: UnitOfWork) -> s.IssueOut:
        ses = uow.session
        issued: list[int] = []
        already = len(fines) - len(new)
        for f in new:
            lookup = select(FinancePenalty).where(
                FinancePenalty.period_id == f.period_id, FinancePenalty.obligation_id == f.obligation_id
            )
            row = FinancePenalty(
                notice_no=f"FK{today:%Y%m%d}-{secrets.token_hex(4).upper()}",
                enterprise_id=f.enterprise_id,
                enterprise_organisation_id=orgs[f.enterprise_id],
                enterprise_name=f.enterprise_name,
                enterprise_uscc=f.uscc,
                period_id=f.period_id,
                period_code=f.period_code,
                scheme_code=f.scheme_code,
                obligation_id=f.obligation_id,
                shortfall=f.shortfall_at_deadline,
                fine_fen=f.fine_fen,
                fine_formula=f.fine_formula[:500],
                citation=f.citation[:500],
                issued_on=today,
                due_on=max(due, f.due_on) if f.due_on else due,
                created_at=now,
            )
            got = await ledger.insert_or_get(ses, row, lookup)
            if got is row:
                issued.append(row.id or 0)
                uow.audit(
                    actor,
                    "penalty.issue",
                    "finance_penalty",
                    str(row.id),
                    {"notice_no": row.notice_no, "fine_fen": row.fine_fen, "due_on": row.due_on.isoformat()},
                )
                emit(
                    ses,
                    "penalty.issued",
                    {
                        "notice_id": row.id,
                        "notice_no": row.notice_no,
                        "enterprise_id": row.enterprise_id,
                        "period_code": row.period_code,
                        "fine_fen": row.fine_fen,
                        "due_on": row.due_on.isoformat(),
                    },
                    to=(row.enterprise_organisation_id,),
                    subject=f"penalty:{row.id}",
                )
            else:
                already += 1
        return s.IssueOut(issued=len(issued), already_issued=already, notices=issued)

    return await ctx.db.run(work)


def _penalty_out(p: FinancePenalty, today: dt.date) -> s.PenaltyOut:
    bp = int(param("late_surcharge_bp_per_day", today))
    if p.status == "paid":
        due = rules.AmountDue(p.fine_fen, p.surcharge_fen, 0)
        on_paid = business_date(p.paid_at) if p.paid_at else today
        days_late = max(0, (on_paid - p.due_on).days)
    else:
        due = rules.amount_due(p.fine_fen, p.due_on, today, bp)
        days_late = due.days_late
    return s.PenaltyOut(
        id=p.id or 0,
        notice_no=p.notice_no,
        enterprise_id=p.enterprise_id,
        enterprise_name=p.enterprise_name,
        enterprise_uscc=p.enterprise_uscc,
        period_id=p.period_id,
        period_code=p.period_code,
        scheme_code=p.scheme_code,
        shortfall=p.shortfall,
        fine_fen=p.fine_fen,
        fine_yuan=figures.yuan_plain(p.fine_fen),
        fine_formula=p.fine_formula,
        citation=p.citation,
        issued_on=p.issued_on,
        due_on=p.due_on,
        status=rules.penalty_status(p.status == "paid", p.due_on, today),
        days_late=days_late,
        surcharge_fen=due.surcharge_fen,
        amount_due_fen=0 if p.status == "paid" else due.total_fen,
        amount_due_yuan=figures.yuan_plain(0 if p.status == "paid" else due.total_fen),
        paid_fen=p.paid_fen,
        paid_at=p.paid_at,
        bank_reference=p.bank_reference,
    )


async def list_penalties(
    ctx: FinanceContext, who: Identity, *, status: str | None = None, period_id: int | None = None, limit: int = 200
) -> list[s.PenaltyOut]:
    today = ctx.today()

    async def work(uow: UnitOfWork) -> list[s.PenaltyOut]:
        q = select(FinancePenalty)
        if who.role == Role.EMITTER:
            q = q.where(FinancePenalty.enterprise_organisation_id == who.organisation_id)
        if period_id is not None:
            q = q.where(FinancePenalty.period_id == period_id)
        if status == "paid":
            q = q.where(FinancePenalty.status == "paid")
        elif status == "overdue":
            q = q.where(FinancePenalty.status == "unpaid", FinancePenalty.due_on < today)
        elif status == "unpaid":
            q = q.where(FinancePenalty.status == "unpaid", FinancePenalty.due_on >= today)
        rows = (
            await uow.session.execute(q.order_by(FinancePenalty.id).limit(max(1, min(limit, LIST_LIMIT_MAX))))
        ).scalars()
        return [_penalty_out(p, today) for p in rows]

    return await ctx.db.read(work)


async def record_penalty_payment(
    ctx: FinanceContext, who: Identity, penalty_id: int, req: s.RecordPayment, request_key: str | None = None
) -> s.PenaltyOut:
    """A bank records that the enterprise paid a notice: exactly the amount due today (fine and late
    surcharge), once. The notice number must match, so a bank cannot pay (or read) notices by guessing ids."""
    require(who, Role.BANK)
    now = ctx.clock.now()
    today = business_date(now)
    amount = parse_money_fen(req.amount_yuan, field="amount_yuan")
    reference = clean_text(req.bank_reference, "bank_reference", max_len=100)

    async def work(uow: UnitOfWork) -> s.PenaltyOut:
        ses = uow.session
        p = await ses.get(FinancePenalty, penalty_id)
        if p is None or not secrets.compare_digest(p.notice_no.encode(), req.notice_no.strip()[:40].encode()):
            raise NotFound("penalty notice")
        if p.status == "paid":
            raise Conflict(
                "penalty-already-paid",
                f"Notice {p.notice_no} was paid on {p.paid_at}.",
                extra={"current_state": "paid"},
            )
        due = rules.amount_due(p.fine_fen, p.due_on, today, int(param("late_surcharge_bp_per_day", today)))
        if amount != due.total_fen:
            raise AppError(
                "payment-amount-mismatch",
                f"Today {figures.yuan(due.total_fen)} yuan is due (fine {figures.yuan(due.fine_fen)}, late surcharge "
                f"{figures.yuan(due.surcharge_fen)} for {due.days_late} days); {figures.yuan(amount)} was given.",
                field="amount_yuan",
                extra={"amount_due_fen": due.total_fen, "surcharge_fen": due.surcharge_fen},
            )
        result = await ses.execute(
            update(FinancePenalty)
            .where(FinancePenalty.id == p.id, FinancePenalty.status == "unpaid")
            .values(
                status="paid",
                paid_fen=amount,
                surcharge_fen=due.surcharge_fen,
                paid_at=now,
                paid_recorded_by=who.principal_id,
                paid_bank_organisation_id=who.organisation_id,
                bank_reference=reference,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise Conflict(
                "penalty-already-paid", f"Notice {p.notice_no} was just paid.", extra={"current_state": "paid"}
            )
        payer = await account(ses, FINE_PAYER, p.enterprise_id)
        revenue = await account(ses, FINE_REVENUE, 0)
        await ledger.create_transfer(
            ses,
            client_id=f"fin:penalty:{p.id}:payment",
            debit_account_id=payer.id or 0,
            credit_account_id=revenue.id or 0,
            asset_id=payer.asset_id,
            amount=amount,
            code="penalty_payment",
            now=now,
            ref=f"finance_penalty:{p.id}",
            field="amount_yuan",
        )
        await ses.refresh(p)
        uow.audit(
            who.actor,
            "penalty.paid",
            "finance_penalty",
            str(p.id),
            {"notice_no": p.notice_no, "paid_fen": amount, "bank_reference": reference},
        )
        return _penalty_out(p, today)

    return await ctx.db.run(work)


async def mark_overdue_penalties(ctx: FinanceContext, day_key: str | None = None) -> dict[str, Any]:
    """The scheduler's daily pass: flag every unpaid notice past its due day (once), for the reminders."""
    today = dt.date.fromisoformat(day_key) if day_key else ctx.today()

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        ids = [
            int(i)
            for i in (
                await ses.execute(
                    select(FinancePenalty.id).where(
                        FinancePenalty.status == "unpaid",
                        FinancePenalty.due_on < today,
                        FinancePenalty.overdue_marked_on.is_(None),  # type: ignore[union-attr]
                    )
                )
            ).scalars()
        ]
        if ids:
            await ses.execute(
                update(FinancePenalty)
                .where(FinancePenalty.id.in_(ids), FinancePenalty.overdue_marked_on.is_(None))  # type: ignore[union-attr]
                .values(overdue_marked_on=today)
                .execution_options(synchronize_session=False)
            )
            uow.audit(
                "system:scheduler",
                "penalty.overdue",
                "finance_penalty",
                ",".join(map(str, ids))[:64],
                {"ids": ids, "on": today.isoformat()},
            )
        return {"marked_overdue": len(ids)}

    return await ctx.db.run(work)
