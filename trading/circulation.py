"""The reconciliation a regulator reads: the ledger's own invariants, units in circulation per instrument
(`registry.circulation`) and money in the market (`trading.domain.circulation`), read in one transaction.

`reconcile_circulation(db)` is what `greenrights audit reconcile` prints and what other code calls (a simulator at
the end of a year): it returns a `Circulation` whose `ok` is false on any difference and whose `lines()` are the
report. It lives in this context because it is the lowest that may read both the registry's and the market's
records (pyproject's import-linter layers); the arithmetic is in the two contexts' `domain/circulation.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.db import Database, UnitOfWork
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer
from registry.circulation import unit_circulation
from registry.domain.circulation import UnitReconciliation
from trading.clearing import CLEARING, CNY, FEE, FUND, SETTLEMENT
from trading.domain.circulation import MoneyFigures, MoneyReconciliation, reconcile_money
from trading.models import FundMovement, Trade


async def money_figures(ses: AsyncSession) -> MoneyFigures:
    moved = {
        kind: int(total)
        for kind, total in await ses.execute(
            select(FundMovement.kind, func.sum(FundMovement.amount_fen))
            .where(FundMovement.status == "confirmed")
            .group_by(FundMovement.kind)
        )
    }
    charged = (
        await ses.execute(select(func.coalesce(func.sum(Trade.buyer_fee_fen + Trade.seller_fee_fen), 0)))
    ).scalar_one()
    posted = {
        kind: int(total)
        for kind, total in await ses.execute(
            select(LedgerAccount.owner_kind, func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted))
            .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
            .where(LedgerAsset.code == CNY, LedgerAccount.owner_kind.in_([FUND, FEE, CLEARING, SETTLEMENT]))  # type: ignore[attr-defined]
            .group_by(LedgerAccount.owner_kind)
        )
    }
    return MoneyFigures(
        deposits=moved.get("deposit", 0),
        withdrawals=moved.get("withdrawal", 0),
        fees_charged=int(charged),
        funds=posted.get(FUND, 0),
        fees=posted.get(FEE, 0),
        clearing=posted.get(CLEARING, 0),
        bank_net=-posted.get(SETTLEMENT, 0),
    )


async def money_circulation(ses: AsyncSession) -> MoneyReconciliation:
    """Money in the market against confirmed deposits − confirmed withdrawals (see `trading.domain.circulation`)."""
    return reconcile_money(await money_figures(ses))


@dataclass(frozen=True)
class Circulation:
    """One reconciliation: the ledger's differences (`ledger.check_invariants`), one line per instrument, the money
    line, and how many ledger accounts and transfers were read."""

    ledger_differences: tuple[str, ...]
    units: tuple[UnitReconciliation, ...]
    money: MoneyReconciliation
    accounts: int
    transfers: int

    @property
    def ok(self) -> bool:
        return not self.ledger_differences and self.money.ok and all(u.ok for u in self.units)

    @property
    def mismatched(self) -> list[str]:
        """The codes of the instruments (and CNY) whose line is a MISMATCH."""
        return [u.figures.code for u in self.units if not u.ok] + ([] if self.money.ok else ["CNY"])

    def lines(self) -> list[str]:
        return [u.line() for u in self.units] + [self.money.line()]


async def circulation(ses: AsyncSession) -> Circulation:
    """The whole reconciliation in the caller's session (read it in one transaction for one snapshot)."""
    accounts = (await ses.execute(select(func.count()).select_from(LedgerAccount))).scalar_one()
    transfers = (await ses.execute(select(func.count()).select_from(LedgerTransfer))).scalar_one()
    return Circulation(
        ledger_differences=tuple(await ledger.check_invariants(ses)),
        units=tuple(await unit_circulation(ses)),
        money=await money_circulation(ses),
        accounts=int(accounts),
        transfers=int(transfers),
    )


async def reconcile_circulation(db: Database) -> Circulation:
    """`circulation` in one read-only transaction of its own."""

    async def work(uow: UnitOfWork) -> Circulation:
        return await circulation(uow.session)

    return await db.read(work)
