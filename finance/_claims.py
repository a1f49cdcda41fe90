"""A claim as its use cases load, show and move it: whether the caller may see it (a foreign claim answers the same
404 as a missing one), its outward form with history and documents, and the one version-checked transition
that every move of a claim goes through (with its event row and audit entry).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, NotFound
from core.events import emit
from core.identity import Identity, Role
from core.workdays import is_working_day
from finance import schemas as s
from finance._common import SEES_ALL_CLAIMS, actor_of, claim_no, dump_json, load_json, param, refused
from finance.domain import rules
from finance.domain import workflow as wf
from finance.domain.workflow import Action, State
from finance.models import FinanceClaim, FinanceClaimEvent, FinanceDocument


def visible(who: Identity, claim: FinanceClaim) -> bool:
    if who.role in SEES_ALL_CLAIMS:
        return True
    return who.role == Role.EMITTER and claim.enterprise_organisation_id == who.organisation_id


async def load_claim(ses: AsyncSession, who: Identity | None, claim_id: int) -> FinanceClaim:
    claim = await ses.get(FinanceClaim, claim_id, populate_existing=True)
    if claim is None or (who is not None and not visible(who, claim)):
        raise NotFound("claim")
    return claim


def claim_out(
    claim: FinanceClaim,
    today: dt.date,
    *,
    events: list[FinanceClaimEvent] | None = None,
    documents: list[FinanceDocument] | None = None,
    detail: bool = False,
) -> s.ClaimOut:
    determination = load_json(claim.determination)
    changes = load_json(claim.changes, [])
    return s.ClaimOut(
        id=claim.id or 0,
        claim_no=claim_no(claim),
        enterprise_id=claim.enterprise_id,
        enterprise_name=claim.enterprise_name,
        enterprise_uscc=claim.enterprise_uscc,
        programme=claim.programme,
        project_ref=claim.project_ref,
        period=claim.period,
        facts=load_json(claim.facts, {}),
        payee_bank=claim.payee_bank,
        payee_account_no=claim.payee_account_no,
        state=claim.state,
        allowed_actions=[a.value for a in wf.allowed_actions(State(claim.state))],
        version=claim.version,
        cycle=claim.cycle,
        due_on=claim.due_on,
        overdue=claim.due_on is not None and today > claim.due_on,
        submitted_by=claim.submitted_by,
        submitted_at=claim.submitted_at,
        checked_by=claim.checked_by,
        reviewed_by=claim.reviewed_by,
        reviewed_at=claim.reviewed_at,
        eligible=claim.eligible,
        failed_gates=list(determination.get("failed_gates", [])) if determination else [],
        amount_fen=claim.amount_fen,
        amount_yuan=figures.yuan_plain(claim.amount_fen),
        approved_by=claim.approved_by,
        approved_at=claim.approved_at,
        notice_first_day=claim.notice_first_day,
        notice_last_day=claim.notice_last_day,
        budget_id=claim.budget_id,
        decided_by=claim.decided_by,
        decided_at=claim.decided_at,
        reason=claim.reason,
        changes_since_last_decision=[s.FactChangeOut(**c) for c in changes],
        disbursement_batch_id=claim.disbursement_batch_id,
        disbursed_at=claim.disbursed_at,
        clawed_back_fen=claim.clawed_back_fen,
        created_at=claim.created_at,
        determination=determination if detail else None,
        history=[
            s.ClaimEventOut(
                seq=e.seq,
                action=e.action,
                from_state=e.from_state,
                to_state=e.to_state,
                actor_id=e.actor_id,
                actor_role=e.actor_role,
                at=e.at,
                note=e.note,
            )
            for e in events or []
        ],
        documents=[
            s.DocumentRef(kind=d.kind, document_no=d.document_no, verification_code=d.code, issued_at=d.issued_at)
            for d in documents or []
        ],
    )


async def claim_detail(ses: AsyncSession, claim: FinanceClaim, today: dt.date) -> s.ClaimOut:
    events = list(
        (
            await ses.execute(
                select(FinanceClaimEvent).where(FinanceClaimEvent.claim_id == claim.id).order_by(FinanceClaimEvent.seq)
            )
        ).scalars()
    )
    docs = list(
        (
            await ses.execute(
                select(FinanceDocument).where(FinanceDocument.claim_id == claim.id).order_by(FinanceDocument.id)
            )
        ).scalars()
    )
    return claim_out(claim, today, events=events, documents=docs, detail=True)


async def transition(
    uow: UnitOfWork,
    claim: FinanceClaim,
    action: Action,
    who: Identity | None,
    now: dt.datetime,
    *,
    note: str = "",
    data: dict[str, Any] | None = None,
    **values: Any,
) -> State:
    """Move the claim by `action` with a conditional UPDATE on its version (taken before any money moves).
    Refused with 409 naming the current state when the table does not allow it or someone moved it first."""
    ses = uow.session
    try:
        target = wf.next_state(claim.state, action)
    except wf.TransitionRefused as exc:
        raise refused(exc) from None
    today = business_date(now)
    if "due_on" not in values:
        values["due_on"] = rules.stage_due_on(target, today, stage_days(today), is_working_day)
    seen = claim.version
    result = await ses.execute(
        update(FinanceClaim)
        .where(FinanceClaim.id == claim.id, FinanceClaim.version == seen)
        .values(state=target.value, version=seen + 1, state_changed_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        current = (
            await ses.execute(
                select(FinanceClaim.state).where(FinanceClaim.id == claim.id).execution_options(populate_existing=True)
            )
        ).scalar_one()
        exc = wf.TransitionRefused(State(current), action)
        raise AppError(
            "claim-transition-refused",
            f"The claim was changed by someone else and is now {current}; reload it and try again.",
            extra={
                "current_state": current,
                "action": action.value,
                "allowed_actions": [a.value for a in exc.allowed],
            },
        )
    actor_id, actor_role, actor = actor_of(who)
    ses.add(
        FinanceClaimEvent(
            claim_id=claim.id or 0,
            seq=seen + 1,
            action=action.value,
            from_state=claim.state,
            to_state=target.value,
            actor_id=actor_id,
            actor_role=actor_role,
            at=now,
            note=note[:1000],
            data=dump_json(data or {}),
        )
    )
    await ses.flush()
    uow.audit(
        actor,
        f"claim.{action.value}",
        "finance_claim",
        str(claim.id),
        {"from": claim.state, "to": target.value, "version": seen + 1, **(data or {})},
    )
    await ses.refresh(claim)
    _claim_event(ses, claim, target, now)
    return target


def _claim_event(ses: AsyncSession, claim: FinanceClaim, target: State, now: dt.datetime) -> None:
    """The outbox event of a claim's move that its enterprise acts on: submitted, decided, paid (core/events.py)."""
    common = {"claim_id": claim.id, "programme": claim.programme, "enterprise_id": claim.enterprise_id}
    if target is State.SUBMITTED:
        name, body = "claim.submitted", {**common, "amount_fen": claim.amount_fen, "submitted_at": now.isoformat()}
    elif target in (State.APPROVED, State.REJECTED):
        decision = "approved" if target is State.APPROVED else "rejected"
        amount = claim.amount_fen if target is State.APPROVED else 0
        body = {**common, "decision": decision, "amount_fen": amount, "reason": claim.reason}
        name = "claim.decided"
    elif target is State.DISBURSED:
        name = "claim.disbursed"
        body = {**common, "amount_fen": claim.amount_fen, "batch_id": claim.disbursement_batch_id}
    else:
        return
    emit(ses, name, body, to=(claim.enterprise_organisation_id,), subject=f"claim:{claim.id}:v{claim.version}")


def stage_days(on: dt.date) -> dict[str, int]:
    return {
        name: int(param(name, on))
        for name in (
            "formal_check_working_days",
            "review_working_days",
            "approval_working_days",
            "disbursement_working_days",
        )
    }
