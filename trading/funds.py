"""Fund accounts in yuan at the settlement bank: a deposit moves nothing until the bank confirms that the money
arrived; a withdrawal is held at once and posted when the bank confirms the payment (voided when it rejects).
A member sees its own balance, what is available and what open orders and bids hold. Each movement names its
settlement bank (`bank_organisation_id`; implied while only one bank is registered); only that bank sees and decides
it, and another bank's movements read like missing ones.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.identity import Identity, Role
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer, Organisation
from core.quantity import parse_money_fen
from trading import clearing
from trading import schemas as s
from trading.context import TradingContext
from trading.models import FundMovement


async def request_fund_movement(
    ctx: TradingContext, who: Identity, kind: str, req: s.FundRequest, request_key: str | None
) -> s.FundMovementOut:
    """A deposit (moves nothing until the bank confirms) or a withdrawal (held now, posted on confirmation)."""
    amount_fen = parse_money_fen(req.amount, field="amount")
    reference = req.reference.strip()
    if any(not ch.isprintable() for ch in reference):
        raise InvalidInput("reference", "The reference must be printable text.")
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.FundMovementOut:
        ses = uow.session
        if request_key is not None:
            prior = (
                await ses.execute(select(FundMovement).where(FundMovement.request_key == request_key))
            ).scalar_one_or_none()
            if prior is not None:
                return movement_out(prior)
        bank_org = await settlement_bank(ses, req.bank_organisation_id)
        mv = FundMovement(
            organisation_id=who.organisation_id,
            bank_organisation_id=bank_org,
            kind=kind,
            amount_fen=amount_fen,
            status="requested",
            reference=reference,
            requested_by=who.principal_id,
            request_key=request_key,
            created_at=now,
        )
        ses.add(mv)
        await ses.flush()
        if kind == "withdrawal":
            fund = await ctx.accounts.fund(ses, who.organisation_id)
            bank = await ctx.accounts.settlement(ses)
            mv.held_amount = amount_fen
            mv.hold_transfer_id = await clearing.hold(
                ses,
                client_id=f"fund:{mv.id}:h1",
                from_account_id=fund,
                clearing_id=bank,
                asset_id=await ctx.accounts.cny_asset_id(ses),
                amount=amount_fen,
                code="withdrawal",
                now=now,
                ref=f"fund:{mv.id}",
                field="amount",
                what="funds",
            )
        uow.audit(who.actor, f"funds.{kind}.request", "fund_movement", str(mv.id), {"amount_fen": amount_fen})
        return movement_out(mv)

    return await ctx.db.run(work)


async def decide_fund_movement(
    ctx: TradingContext, who: Identity, movement_id: int, req: s.FundDecision
) -> s.FundMovementOut:
    """The settlement bank confirms (money arrived / paid out) or rejects a requested movement."""
    now = ctx.clock.now()
    target = "confirmed" if req.decision == "confirm" else "rejected"

    async def work(uow: UnitOfWork) -> s.FundMovementOut:
        ses = uow.session
        q = select(FundMovement).where(FundMovement.id == movement_id).execution_options(populate_existing=True)
        if not ctx.db.sqlite:
            q = q.with_for_update()
        mv = (await ses.execute(q)).scalar_one_or_none()
        # A bank decides only the movements of its own customers: another bank's reads like a missing one.
        if mv is None or mv.bank_organisation_id != who.organisation_id:
            raise NotFound("fund movement", field="movement_id")
        if mv.status != "requested":
            if mv.status == target and mv.decided_by == who.principal_id:
                return movement_out(mv)
            raise Conflict("invalid-state", f"Fund movement {mv.id} is already {mv.status}.")
        fund = await ctx.accounts.fund(ses, mv.organisation_id)
        if mv.kind == "deposit" and target == "confirmed":
            bank = await ctx.accounts.settlement(ses)
            result = await ledger.create_transfer(
                ses,
                client_id=f"fund:{mv.id}:deposit",
                debit_account_id=bank,
                credit_account_id=fund,
                asset_id=await ctx.accounts.cny_asset_id(ses),
                amount=mv.amount_fen,
                code="deposit",
                now=now,
                ref=f"fund:{mv.id}",
            )
            mv.transfer_id = result.id
        elif mv.kind == "withdrawal":
            await clearing.collect(
                ses,
                hold_id=mv.hold_transfer_id or 0,
                amount=mv.amount_fen if target == "confirmed" else 0,
                client_id=f"fund:{mv.id}:h1:r",
                now=now,
                code="withdrawal",
            )
            mv.hold_transfer_id = None
            mv.held_amount = 0
        mv.status = target
        mv.decided_by = who.principal_id
        mv.decided_at = now
        if req.reference.strip():
            mv.reference = (mv.reference + " / " + req.reference.strip())[:100]
        uow.audit(who.actor, f"funds.{mv.kind}.{target}", "fund_movement", str(mv.id), {"amount_fen": mv.amount_fen})
        return movement_out(mv)

    return await ctx.db.run(work)


async def _fund_row(ses: AsyncSession, organisation_id: int) -> LedgerAccount | None:
    """The organisation's fund account, None before its first movement."""
    return (
        await ses.execute(
            select(LedgerAccount)
            .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
            .where(
                LedgerAsset.code == clearing.CNY,
                LedgerAccount.owner_kind == clearing.FUND,
                LedgerAccount.owner_id == organisation_id,
            )
        )
    ).scalar_one_or_none()


async def get_fund_account(ctx: TradingContext, who: Identity) -> s.FundAccountOut:
    async def work(uow: UnitOfWork) -> s.FundAccountOut:
        row = await _fund_row(uow.session, who.organisation_id)
        posted = 0 if row is None else row.credits_posted - row.debits_posted
        held = 0 if row is None else row.debits_pending
        return s.FundAccountOut(
            organisation_id=who.organisation_id,
            currency=clearing.CNY,
            balance=figures.yuan_plain(posted),
            available=figures.yuan_plain(posted - held),
            held=figures.yuan_plain(held),
            balance_fen=posted,
            available_fen=posted - held,
            held_fen=held,
        )

    return await ctx.db.read(work)


async def list_fund_transactions(
    ctx: TradingContext, who: Identity, *, limit: int, before_id: int | None
) -> s.FundTransactionPage:
    """The caller's fund account statement, newest first: every posted ledger transfer into or out of it (a
    confirmed deposit or withdrawal, a purchase's price and fee, a sale's price less its fee), so that the amounts
    listed add up to the balance. Holds are not listed (they show as `held` in `getFundAccount`)."""

    async def work(uow: UnitOfWork) -> s.FundTransactionPage:
        ses = uow.session
        account = await _fund_row(ses, who.organisation_id)
        if account is None:
            return s.FundTransactionPage(items=[], next_before_id=None)
        q = select(LedgerTransfer).where(
            or_(LedgerTransfer.debit_account_id == account.id, LedgerTransfer.credit_account_id == account.id),
            LedgerTransfer.kind.in_([ledger.POSTED, ledger.POST_PENDING]),  # type: ignore[attr-defined]
            LedgerTransfer.amount > 0,
        )
        if before_id is not None:
            q = q.where(LedgerTransfer.id < before_id)
        rows = (await ses.execute(q.order_by(LedgerTransfer.id.desc()).limit(limit + 1))).scalars().all()  # type: ignore[union-attr]
        items = []
        for t in rows[:limit]:
            signed = t.amount if t.credit_account_id == account.id else -t.amount
            items.append(
                s.FundTransactionOut(
                    id=t.id or 0,
                    code=t.code,
                    amount=figures.yuan_plain(signed),
                    amount_fen=signed,
                    ref=t.ref,
                    at=t.created_at,
                )
            )
        return s.FundTransactionPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

    return await ctx.db.read(work)


async def list_fund_movements(
    ctx: TradingContext, who: Identity, *, status: str | None, limit: int, before_id: int | None
) -> list[s.FundMovementOut]:
    async def work(uow: UnitOfWork) -> list[s.FundMovementOut]:
        q = select(FundMovement)
        if who.role is Role.BANK:
            q = q.where(FundMovement.bank_organisation_id == who.organisation_id)
        elif not who.reads_all():
            q = q.where(FundMovement.organisation_id == who.organisation_id)
        if status is not None:
            q = q.where(FundMovement.status == status)
        if before_id is not None:
            q = q.where(FundMovement.id < before_id)
        rows = (await uow.session.execute(q.order_by(FundMovement.id.desc()).limit(limit))).scalars()  # type: ignore[union-attr]
        return [movement_out(m) for m in rows]

    return await ctx.db.read(work)


async def settlement_bank(ses: AsyncSession, named: int | None) -> int:
    """The bank organisation that decides a movement: the one named, which must be a bank, or the installation's
    only bank when none is named."""
    if named is not None:
        kind = (await ses.execute(select(Organisation.kind).where(Organisation.id == named))).scalar_one_or_none()
        if kind != "bank":
            raise InvalidInput("bank_organisation_id", f"Organisation {named} is not a settlement bank.")
        return named
    banks = (await ses.execute(select(Organisation.id).where(Organisation.kind == "bank").limit(2))).scalars().all()
    if len(banks) != 1:
        raise InvalidInput(
            "bank_organisation_id",
            "Name the settlement bank that holds this money (bank_organisation_id)"
            + ("." if banks else ": no bank is registered yet."),
        )
    return banks[0]


def movement_out(m: FundMovement) -> s.FundMovementOut:
    return s.FundMovementOut(
        id=m.id or 0,
        organisation_id=m.organisation_id,
        kind=m.kind,
        amount=figures.yuan_plain(m.amount_fen),
        amount_fen=m.amount_fen,
        status=m.status,
        reference=m.reference,
        bank_organisation_id=m.bank_organisation_id,
        created_at=m.created_at,
        decided_at=m.decided_at,
    )
