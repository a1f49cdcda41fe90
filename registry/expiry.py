"""Expiry (核销) of units past their last valid date (green certificates two years from their production month,
discharge permits five years from their period year): a scheduler job moves every holding of an expired
instrument to the expiry account.
"""

from __future__ import annotations

from sqlalchemy import select

from core import ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.models import LedgerAccount
from registry._common import OWNER, record_and_move
from registry.context import RegistryContext
from registry.domain import checks
from registry.models import Instrument, RegistryAccount, RegistryTransaction
from registry.queries import system_account


async def expire_certificates(ctx: RegistryContext) -> int:
    """Move every holding of expired units to the expiry account (核销). Idempotent: expired holdings are empty."""

    async def work(uow: UnitOfWork) -> int:
        ses = uow.session
        now = ctx.clock.now()
        today = business_date(now)
        expired = (await ses.execute(select(Instrument).where(Instrument.valid_until < today))).scalars().all()
        count = 0
        target = await system_account(ses, "expiry")
        for inst in expired:
            rows = (
                await ses.execute(
                    select(LedgerAccount, RegistryAccount)
                    .join(RegistryAccount, RegistryAccount.id == LedgerAccount.owner_id)
                    .where(
                        LedgerAccount.owner_kind == OWNER,
                        LedgerAccount.asset_id == inst.asset_id,
                        RegistryAccount.type.in_(checks.USER_ACCOUNT_TYPES),  # type: ignore[attr-defined]
                        LedgerAccount.credits_posted > LedgerAccount.debits_posted + LedgerAccount.debits_pending,
                    )
                    .order_by(LedgerAccount.id)
                )
            ).all()
            for la, acc in rows:
                qty = ledger.available(la)
                tx = await record_and_move(
                    ses,
                    RegistryTransaction(
                        code="expiry",
                        instrument_id=inst.id or 0,
                        from_account_id=acc.id,
                        to_account_id=target.id,
                        quantity=qty,
                        initiated_by=0,
                        initiator_organisation_id=acc.organisation_id,
                        created_at=now,
                    ),
                    inst,
                    acc,
                    target,
                    now,
                )
                uow.audit(
                    "system:scheduler",
                    "units.expire",
                    "transaction",
                    str(tx.id),
                    {"account": acc.id, "instrument": inst.code, "quantity": qty},
                )
                count += 1
        return count

    return await ctx.db.run(work)
