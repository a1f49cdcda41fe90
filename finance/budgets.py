"""Programme budgets on the ledger: opening a programme's budget for a fiscal year, appropriating money into it,
and its figures (appropriated, committed, disbursed, clawed back, available), read from the ledger and checked
against the ledger's own available balance.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.figures import yuan_plain
from core.identity import Identity, Role
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer
from core.quantity import parse_money_fen
from core.text import clean_text
from finance import schemas as s
from finance._common import APPROPRIATION, BUDGET, CNY, account, param, require
from finance.context import FinanceContext
from finance.domain import rules
from finance.models import FinanceBudget


async def create_budget(ctx: FinanceContext, who: Identity, req: s.CreateBudget) -> s.BudgetOut:
    require(who, Role.FINANCE_APPROVER)
    now = ctx.clock.now()
    today = business_date(now)
    if req.programme not in param("claimable_programmes", today):
        raise InvalidInput("programme", f"Budgets are kept for {', '.join(param('claimable_programmes', today))}.")
    if not 2000 <= req.fiscal_year <= 2200:
        raise InvalidInput("fiscal_year", "Give a fiscal year between 2000 and 2200.")
    name = clean_text(req.name, "name", max_len=200, required=False) or f"{req.programme} {req.fiscal_year}"

    async def work(uow: UnitOfWork) -> s.BudgetOut:
        ses = uow.session
        budget = FinanceBudget(
            programme=req.programme,
            fiscal_year=req.fiscal_year,
            name=name,
            created_by=who.principal_id,
            created_at=now,
        )
        try:
            async with ses.begin_nested():
                ses.add(budget)
                await ses.flush()
        except IntegrityError:
            raise Conflict(
                "duplicate", f"A {req.programme} budget for {req.fiscal_year} exists.", field="fiscal_year"
            ) from None
        await account(ses, BUDGET, budget.id or 0)
        uow.audit(
            who.actor,
            "budget.create",
            "finance_budget",
            str(budget.id),
            {"programme": req.programme, "fiscal_year": req.fiscal_year},
        )
        return await _budget_out(ses, budget)

    return await ctx.db.run(work)


async def appropriate_budget(
    ctx: FinanceContext, who: Identity, budget_id: int, req: s.Appropriate, request_key: str | None
) -> s.BudgetOut:
    """Post an appropriation into the budget (from the appropriation's issuance-role source account)."""
    require(who, Role.FINANCE_APPROVER)
    now = ctx.clock.now()
    amount = parse_money_fen(req.amount_yuan, field="amount_yuan")
    reference = clean_text(req.reference, "reference", max_len=64, required=False)
    client_id = f"fin:appr:{hashlib.sha256((request_key or secrets.token_hex(16)).encode()).hexdigest()[:40]}"

    async def work(uow: UnitOfWork) -> s.BudgetOut:
        ses = uow.session
        budget = await ses.get(FinanceBudget, budget_id)
        if budget is None:
            raise NotFound("budget")
        source = await account(ses, APPROPRIATION, budget.id or 0)
        target = await account(ses, BUDGET, budget.id or 0)
        result = await ledger.create_transfer(
            ses,
            client_id=client_id,
            debit_account_id=source.id or 0,
            credit_account_id=target.id or 0,
            asset_id=source.asset_id,
            amount=amount,
            code="appropriation",
            now=now,
            ref=reference or f"finance_budget:{budget.id}",
            field="amount_yuan",
        )
        if result.created:
            uow.audit(
                who.actor,
                "budget.appropriate",
                "finance_budget",
                str(budget.id),
                {"amount_fen": amount, "reference": reference},
            )
        return await _budget_out(ses, budget)

    return await ctx.db.run(work)


async def budget_figures(ses: AsyncSession, budget: FinanceBudget) -> rules.BudgetFigures:
    """A budget's figures from its ledger account: appropriated and clawed back are the posted credits by code,
    committed and disbursed the account's pending and posted debits (the year's report reads them here too)."""
    asset_id = (await ses.execute(select(LedgerAsset.id).where(LedgerAsset.code == CNY))).scalar_one_or_none()
    acc = None
    if asset_id is not None:
        acc = (
            await ses.execute(
                select(LedgerAccount)
                .where(
                    LedgerAccount.owner_kind == BUDGET[0],
                    LedgerAccount.owner_id == budget.id,
                    LedgerAccount.asset_id == asset_id,
                )
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
    appropriated = clawed = 0
    if acc is not None:
        sums = dict(
            (
                await ses.execute(
                    select(LedgerTransfer.code, func.coalesce(func.sum(LedgerTransfer.amount), 0))
                    .where(LedgerTransfer.credit_account_id == acc.id, LedgerTransfer.kind == ledger.POSTED)
                    .group_by(LedgerTransfer.code)
                )
            ).all()
        )
        appropriated = int(sums.get("appropriation", 0))
        clawed = int(sums.get("clawback", 0))
    figures = rules.BudgetFigures(
        appropriated_fen=appropriated,
        committed_fen=acc.debits_pending if acc else 0,
        disbursed_fen=acc.debits_posted if acc else 0,
        clawed_back_fen=clawed,
    )
    # The ledger's own available balance and the budget's arithmetic must agree; a difference is a bug.
    assert acc is None or figures.available_fen == ledger.available(acc), (figures, acc)
    return figures


async def _budget_out(ses: AsyncSession, budget: FinanceBudget) -> s.BudgetOut:
    figures = await budget_figures(ses, budget)
    return s.BudgetOut(
        id=budget.id or 0,
        programme=budget.programme,
        fiscal_year=budget.fiscal_year,
        name=budget.name,
        appropriated_fen=figures.appropriated_fen,
        committed_fen=figures.committed_fen,
        disbursed_fen=figures.disbursed_fen,
        clawed_back_fen=figures.clawed_back_fen,
        available_fen=figures.available_fen,
        available_yuan=yuan_plain(figures.available_fen),
        created_at=budget.created_at,
    )


async def get_budget(ctx: FinanceContext, who: Identity, budget_id: int) -> s.BudgetOut:
    async def work(uow: UnitOfWork) -> s.BudgetOut:
        budget = await uow.session.get(FinanceBudget, budget_id)
        if budget is None:
            raise NotFound("budget")
        return await _budget_out(uow.session, budget)

    return await ctx.db.read(work)


async def list_budgets(ctx: FinanceContext, who: Identity, fiscal_year: int | None = None) -> list[s.BudgetOut]:
    async def work(uow: UnitOfWork) -> list[s.BudgetOut]:
        q = select(FinanceBudget)
        if fiscal_year is not None:
            q = q.where(FinanceBudget.fiscal_year == fiscal_year)
        rows = list((await uow.session.execute(q.order_by(FinanceBudget.id))).scalars())
        return [await _budget_out(uow.session, b) for b in rows]

    return await ctx.db.read(work)
