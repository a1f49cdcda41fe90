"""Transfers between holders and the four-eyes decision. A transfer to a trusted account (or within one
organisation) completes at once; one to an untrusted account is capped, held and awaits a second person of the
initiating organisation, and once approved executes at the dated hour of the next working day
(`execute_due_transfers`, a scheduler job). The same decision approves or rejects a proposed issuance.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.clock import business_date, shanghai_time
from core.db import UnitOfWork
from core.errors import AppError, Conflict, Forbidden, NotFound
from core.events import emit
from core.identity import Identity
from core.quantity import parse_quantity
from core.text import clean_text
from core.workdays import next_working_day
from registry import schemas as s
from registry._common import facts, move, raise_first, tx_out
from registry.context import RegistryContext
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument, RegistryAccount, RegistryTransaction, TrustedAccount
from registry.queries import (
    by_request_key,
    forget_accounts,
    insert_keyed,
    instrument,
    transfer_accounts,
    visible_tx,
)


async def create_transfer(
    ctx: RegistryContext, who: Identity, req: s.MoveUnits, request_key: str | None
) -> s.TransactionOut:
    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        now = ctx.clock.now()
        # First on the accounts as this process last saw them (no read), the INSERT re-checking their status;
        # if a check refuses or the status moved, once more on fresh rows, which decide.
        for remembered in (True, False):
            try:
                tx, inst, source, dest, trusted = await _checked(ctx, ses, who, req, request_key, now, remembered)
            except AppError:
                if remembered:
                    forget_accounts(ses, req.from_account_id, req.to_account_id)
                    continue
                # A retry of a transfer that was made answers as the first time, even if the checks say no today
                # (the account blocked since, the trust withdrawn): the key is looked up only on this rare path.
                if (prior := await by_request_key(ses, request_key)) is not None:
                    return await tx_out(ses, prior)
                raise
            # Claim the request key and record the transaction in one statement: a retry of the same key finds
            # the first transaction instead (everything before only read, so answering with it changes nothing).
            if await insert_keyed(ses, tx, accounts_as_seen=(source, dest) if remembered else ()):
                break
            if (prior := await by_request_key(ses, request_key)) is not None:
                return await tx_out(ses, prior)
            assert remembered, "an unguarded keyed insert refused without a prior transaction"
            forget_accounts(ses, source.id or 0, dest.id or 0)
        held = await move(ses, tx, inst, source, dest, tx.quantity, now, pending=not trusted)
        if not trusted:
            tx.hold_transfer_id = held
        else:
            transfer_completed(ses, tx, inst, source.organisation_id, dest.organisation_id)
        uow.audit(
            who.actor,
            "units.transfer",
            "transaction",
            str(tx.id),
            {"instrument": inst.code, "quantity": tx.quantity, "from": source.id, "to": dest.id, "trusted": trusted},
        )
        return await tx_out(ses, tx)

    return await ctx.db.run(work)


def transfer_completed(
    ses: AsyncSession, tx: RegistryTransaction, inst: Instrument, from_org: int, to_org: int
) -> None:
    """The outbox event of a completed transfer, to both organisations (core/events.py)."""
    emit(
        ses,
        "transfer.completed",
        {
            "transaction_id": tx.id,
            "instrument_code": inst.code,
            "quantity": figures.quantity_plain(tx.quantity, KIND_RULES[Kind(inst.kind)].scale),
            "from_account_id": tx.from_account_id,
            "to_account_id": tx.to_account_id,
            "completed_at": tx.completed_at.isoformat() if tx.completed_at else None,
        },
        to=(from_org, to_org),
        subject=f"transaction:{tx.id}",
    )


async def _checked(
    ctx: RegistryContext,
    ses: AsyncSession,
    who: Identity,
    req: s.MoveUnits,
    request_key: str | None,
    now: dt.datetime,
    remembered: bool = False,
) -> tuple[RegistryTransaction, Instrument, RegistryAccount, RegistryAccount, bool]:
    """Every check of a transfer (reads only), and the transaction it would record; with `remembered`, on the
    accounts as this process last read them (`transfer_accounts`)."""
    source, dest = await transfer_accounts(ses, who, req.from_account_id, req.to_account_id, remembered=remembered)
    inst = await instrument(ses, req.instrument_id)
    quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
    today = business_date(now)
    raise_first(
        checks.check_transfer(
            facts(source),
            facts(dest),
            Kind(inst.kind),
            tradable=inst.tradable,
            expires_on=inst.valid_until,
            today=today,
        )
    )
    trusted = (
        dest.organisation_id == source.organisation_id
        or (
            await ses.execute(
                select(TrustedAccount.id).where(
                    TrustedAccount.account_id == source.id,
                    TrustedAccount.trusted_account_id == dest.id,
                    TrustedAccount.effective_from <= now,
                )
            )
        ).first()
        is not None
    )
    if not trusted:
        raise_first(checks.check_untrusted_cap(quantity, int(ctx.params.value("untrusted_transfer_cap", today))))
    tx = RegistryTransaction(
        code="transfer",
        status="completed" if trusted else "awaiting_approval",
        instrument_id=inst.id or 0,
        from_account_id=source.id,
        to_account_id=dest.id,
        quantity=quantity,
        initiated_by=who.principal_id,
        initiator_organisation_id=who.organisation_id,
        request_key=request_key,
        created_at=now,
        completed_at=now if trusted else None,
    )
    return tx, inst, source, dest, trusted


async def approve_transfer(ctx: RegistryContext, who: Identity, tx_id: int, req: s.Decision) -> s.TransactionOut:
    reason = clean_text(req.reason, "reason", max_len=500, required=req.decision == "reject")

    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        tx = await visible_tx(ses, who, tx_id)
        if tx.status != "awaiting_approval":
            if tx.approved_by == who.principal_id or (tx.status == "rejected" and req.decision == "reject"):
                return await tx_out(ses, tx)
            raise Conflict(
                "invalid-state", f"Transaction {tx.id} is {tx.status}; only one awaiting approval can be decided."
            )
        if tx.initiator_organisation_id != who.organisation_id:
            raise NotFound("transaction")
        if tx.initiated_by == who.principal_id:
            raise AppError("four-eyes-required", "The initiator may not approve its own request; ask a second person.")
        if (
            tx.code == "issuance"
            and who.role.value != KIND_RULES[Kind((await instrument(ses, tx.instrument_id)).kind)].issuer_role
        ):
            raise Forbidden()
        now = ctx.clock.now()
        tx.approved_by = who.principal_id
        details = json.loads(tx.details)
        if req.decision == "reject":
            tx.status = "rejected"
            details["rejection_reason"] = reason
            tx.details = json.dumps(details, ensure_ascii=False)
            await ledger.resolve_pending(
                ses, client_id=f"rtx:{tx.id}:void", pending_id=tx.hold_transfer_id or 0, now=now, post=False
            )
            tx.completed_at = now
        elif tx.code == "issuance":
            await ledger.resolve_pending(
                ses, client_id=f"rtx:{tx.id}:post", pending_id=tx.hold_transfer_id or 0, now=now, post=True
            )
            tx.status = "completed"
            tx.completed_at = now
        else:
            # Union Registry: an approved transfer to an untrusted account executes at noon the next working day.
            hour = int(ctx.params.value("untrusted_execution_hour", business_date(now)))
            tx.execute_after = shanghai_time(next_working_day(business_date(now)), hour)
            tx.status = "approved"
        await ses.flush()
        uow.audit(who.actor, f"transaction.{req.decision}", "transaction", str(tx.id), {"status": tx.status})
        return await tx_out(ses, tx)

    return await ctx.db.run(work)


async def execute_due_transfers(ctx: RegistryContext, limit: int = 1000) -> int:
    """Post approved transfers whose time has come; each by its own hold, so a second run changes nothing."""

    async def work(uow: UnitOfWork) -> int:
        ses = uow.session
        now = ctx.clock.now()
        due = (
            (
                await ses.execute(
                    select(RegistryTransaction)
                    .where(RegistryTransaction.status == "approved", RegistryTransaction.execute_after <= now)
                    .order_by(RegistryTransaction.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        for tx in due:
            inst = await instrument(ses, tx.instrument_id)
            if inst.valid_until is not None and business_date(now) > inst.valid_until:
                await ledger.resolve_pending(
                    ses, client_id=f"rtx:{tx.id}:void", pending_id=tx.hold_transfer_id or 0, now=now, post=False
                )
                tx.status = "cancelled"
            else:
                await ledger.resolve_pending(
                    ses, client_id=f"rtx:{tx.id}:post", pending_id=tx.hold_transfer_id or 0, now=now, post=True
                )
                tx.status = "completed"
                source = await ses.get_one(RegistryAccount, tx.from_account_id)
                dest = await ses.get_one(RegistryAccount, tx.to_account_id)
                tx.completed_at = now
                transfer_completed(ses, tx, inst, source.organisation_id, dest.organisation_id)
            tx.completed_at = now
            uow.audit("system:scheduler", "transaction.execute", "transaction", str(tx.id), {"status": tx.status})
        return len(due)

    return await ctx.db.run(work)
