"""Disbursement of finally approved claims in batches: each batch posts the claims' budget commitments to the
payees and writes the bank's payment file. A batch key names the run, so a retried request or a second
scheduler on the same day pays nothing twice, and each claim is paid by whichever batch finds it first.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, NotFound
from core.identity import Identity, Role
from core.workdays import is_working_day
from finance import schemas as s
from finance._claims import load_claim, transition
from finance._common import BATCH_SIZE_MAX, LIST_LIMIT_MAX, actor_of, claim_no, load_json, refused, require
from finance.context import FinanceContext
from finance.domain import payments
from finance.domain import workflow as wf
from finance.domain.workflow import Action, State
from finance.models import FinanceClaim, FinanceDisbursementBatch


async def disburse_claims(
    ctx: FinanceContext, who: Identity | None, req: s.DisburseClaims, batch_key: str | None
) -> s.DisbursementOut:
    """Pay every finally approved claim (or the ones named) in one batch: post each commitment and write
    the payment file. A batch key names the run, so the same request or the same scheduler day pays once;
    each claim is paid once whatever batch finds it first (its transition is conditional)."""
    if who is not None:
        require(who, Role.FINANCE_APPROVER)
    now = ctx.clock.now()
    today = business_date(now)
    key = batch_key or f"adhoc:{secrets.token_hex(8)}"
    actor = actor_of(who)[2]

    async def work(uow: UnitOfWork) -> s.DisbursementOut:
        ses = uow.session
        prior = (
            await ses.execute(select(FinanceDisbursementBatch).where(FinanceDisbursementBatch.batch_key == key))
        ).scalar_one_or_none()
        if prior is not None:
            return await _batch_out(ses, prior)
        q = select(FinanceClaim).where(FinanceClaim.state == State.APPROVED.value)
        if req.claim_ids is not None:
            # Named claims must all be payable: each one not finally approved is refused naming its state.
            for claim_id in sorted(set(req.claim_ids)):
                named = await load_claim(ses, who, claim_id)
                if named.state != State.APPROVED.value:
                    problem = refused(wf.TransitionRefused(State(named.state), Action.DISBURSE))
                    problem.extra["claim_id"] = claim_id
                    raise problem
            q = q.where(FinanceClaim.id.in_(req.claim_ids))  # type: ignore[union-attr]
        claims = list((await ses.execute(q.order_by(FinanceClaim.id).limit(BATCH_SIZE_MAX))).scalars())
        if not claims:
            return s.DisbursementOut(
                id=0,
                batch_no="",
                created_at=now,
                created_by=actor,
                line_count=0,
                total_fen=0,
                total_yuan="0.00",
                claim_ids=[],
            )
        batch = FinanceDisbursementBatch(batch_key=key, created_by=actor, created_at=now)
        ses.add(batch)
        await ses.flush()
        batch.batch_no = f"FB{today:%Y%m%d}-{batch.id:05d}"
        lines: list[payments.PaymentLine] = []
        total = 0
        for claim in claims:
            hold_id = claim.hold_transfer_id
            assert hold_id is not None
            try:
                await transition(
                    uow,
                    claim,
                    Action.DISBURSE,
                    who,
                    now,
                    data={"batch_id": batch.id},
                    disbursement_batch_id=batch.id,
                    disbursed_at=now,
                )
            except AppError as exc:
                # Rejected (or paid by another batch) since it was read: that claim is not this batch's.
                if exc.problem.slug != "claim-transition-refused":
                    raise
                continue
            await ledger.resolve_pending(
                ses,
                client_id=f"fin:claim:{claim.id}:c{claim.cycle}:disburse",
                pending_id=hold_id,
                now=now,
                post=True,
                code="subsidy_disbursement",
            )
            name = (load_json(claim.determination, {}) or {}).get("programme_name_zh", claim.programme)
            number = claim_no(claim)
            lines.append(
                payments.PaymentLine(
                    claim_no=number,
                    payee_name=claim.enterprise_name,
                    payee_uscc=claim.enterprise_uscc,
                    payee_bank=claim.payee_bank,
                    payee_account_no=claim.payee_account_no,
                    amount_fen=claim.amount_fen,
                    purpose=f"{number} {name}",
                )
            )
            total += claim.amount_fen
        if not lines:
            # Every claim was paid by a concurrent batch: this run made no payment and leaves no batch.
            await ses.delete(batch)
            await ses.flush()
            return s.DisbursementOut(
                id=0,
                batch_no="",
                created_at=now,
                created_by=actor,
                line_count=0,
                total_fen=0,
                total_yuan="0.00",
                claim_ids=[],
            )
        batch.line_count = len(lines)
        batch.total_fen = total
        batch.payment_file = payments.payment_file(batch.batch_no, lines)
        await ses.flush()
        uow.audit(
            actor,
            "disbursement.batch",
            "finance_disbursement_batch",
            str(batch.id),
            {"batch_no": batch.batch_no, "lines": len(lines), "total_fen": total},
        )
        return await _batch_out(ses, batch)

    return await ctx.db.run(work)


async def _batch_out(ses: AsyncSession, batch: FinanceDisbursementBatch) -> s.DisbursementOut:
    ids = [
        int(i)
        for i in (
            await ses.execute(
                select(FinanceClaim.id).where(FinanceClaim.disbursement_batch_id == batch.id).order_by(FinanceClaim.id)
            )
        ).scalars()
    ]
    return s.DisbursementOut(
        id=batch.id or 0,
        batch_no=batch.batch_no,
        created_at=batch.created_at,
        created_by=batch.created_by,
        line_count=batch.line_count,
        total_fen=batch.total_fen,
        total_yuan=figures.yuan_plain(batch.total_fen),
        claim_ids=ids,
    )


async def run_disbursement_batch(ctx: FinanceContext, day_key: str) -> dict[str, Any]:
    """The scheduler's daily payment run (working days only), keyed by the day."""
    day = dt.date.fromisoformat(day_key)
    if not is_working_day(day):
        return {"skipped": f"{day_key} is not a working day"}
    out = await disburse_claims(ctx, None, s.DisburseClaims(), f"job:{day_key}")
    return {"batch_id": out.id, "batch_no": out.batch_no, "lines": out.line_count, "total_fen": out.total_fen}


async def list_disbursements(ctx: FinanceContext, who: Identity, limit: int = 50) -> list[s.DisbursementOut]:
    async def work(uow: UnitOfWork) -> list[s.DisbursementOut]:
        rows = (
            await uow.session.execute(
                select(FinanceDisbursementBatch)
                .order_by(FinanceDisbursementBatch.id.desc())  # type: ignore[union-attr]
                .limit(max(1, min(limit, LIST_LIMIT_MAX)))
            )
        ).scalars()
        return [await _batch_out(uow.session, b) for b in list(rows)]

    return await ctx.db.read(work)


async def payment_file(ctx: FinanceContext, who: Identity, batch_id: int) -> tuple[str, str]:
    async def work(uow: UnitOfWork) -> tuple[str, str]:
        batch = await uow.session.get(FinanceDisbursementBatch, batch_id)
        if batch is None:
            raise NotFound("disbursement batch")
        return batch.batch_no, batch.payment_file

    return await ctx.db.read(work)
