"""Published results, for the authority, the enterprise and the other contexts: the settled results of a period
with totals by city and industry, an enterprise's compliance status (open shortfall, what it owes, the latest
settled status per scheme) for incentives and finance, and every settled fine for finance's penalty notices.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.clock import end_of_business_day
from core.db import UnitOfWork
from core.errors import NotFound
from core.identity import Identity, Role
from registry.compliance import schemas as s
from registry.compliance._common import OBLIGATION_KIND, deadlines_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import (
    AllocationDeduction,
    AllocationLine,
    AllocationTable,
    CompliancePeriod,
    ComplianceReport,
    ComplianceScheme,
    Obligation,
    SettlementResultRow,
)
from registry.compliance.queries import load_period, may_see_enterprise, own_enterprise
from registry.domain.settlement import SettlementResult, Status, Timeliness, totals_by
from registry.models import Enterprise, RegistryAccount, RegistryTransaction


async def list_results(
    ctx: ComplianceContext,
    who: Identity,
    period_id: int,
    *,
    status: str | None = None,
    city: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> s.ResultsPage:
    async def work(uow: UnitOfWork) -> s.ResultsPage:
        ses = uow.session
        period, _ = await load_period(ses, period_id)
        q = (
            select(SettlementResultRow, Enterprise)
            .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
            .where(SettlementResultRow.period_id == period.id)
        )
        if who.role is Role.EMITTER:
            own = await own_enterprise(ses, who)
            q = q.where(SettlementResultRow.enterprise_id == own.id)
        if status is not None:
            q = q.where(SettlementResultRow.status == status)
        if city is not None:
            q = q.where(SettlementResultRow.city == city)
        rows = (await ses.execute(q.order_by(SettlementResultRow.id))).all()
        domain = [domain_result(r) for r, _ in rows]
        return s.ResultsPage(
            period_id=period.id or 0,
            total=len(rows),
            items=[_result_out(r, e) for r, e in rows[offset : offset + limit]],
            totals_by_city=[_group_out(g) for g in totals_by(domain, "city")],
            totals_by_industry=[_group_out(g) for g in totals_by(domain, "industry")],
        )

    return await ctx.db.read(work)


async def compliance_status(ctx: ComplianceContext, enterprise_id: int,
                            as_of: dt.date | None = None) -> dict[str, Any]:
    """For the incentives and finance contexts: whether the enterprise has an open shortfall (a settled
    shortfall not yet deducted from a later allocation) and its latest settled status per scheme.

    With `as_of`, the carbon open shortfall the registry showed at the end of that day (Shanghai), see
    `carbon_shortfall_as_of`; the answer then has `enterprise_id`, `as_of`, `carbon_open_shortfall_t`,
    `open_shortfall` (carbon only) and `carbon_periods` (the per-period detail)."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        if as_of is not None:
            return await carbon_shortfall_as_of(uow.session, enterprise_id, as_of)
        return msgspec.to_builtins(await _status(uow.session, enterprise_id))  # type: ignore[no-any-return]

    return await ctx.db.read(work)


async def carbon_shortfall_as_of(ses: AsyncSession, enterprise_id: int, day: dt.date) -> dict[str, Any]:
    """The open carbon compliance shortfall (tCO2e) as the registry showed it at the end of `day`, i.e. from
    the records timestamped before 00:00 Shanghai of the next day (`cut`).

    Per carbon obligation of the enterprise whose period's surrender deadline had passed by `cut`:

    - settled by `cut` (its settlement result's `settled_at`): what the settlement left owed, i.e. the
      deductions created by `cut` less what allocation tables posted by `cut` deducted from them. Deductions
      are applied oldest first and an application has no date of its own, so this is counted per scheme:
      Σ deduction quantities created before `cut` − Σ `deducted` of the enterprise's lines in tables posted
      before `cut` (exact: an allocation can only have reduced deductions that existed when it was posted);
    - not settled by `cut` (the deadline passed, the correction window may still be open): the verified
      obligation less the enterprise's completed surrenders for the period with `completed_at` before `cut`
      (on time and late ones alike), never below 0.

    Inexact points, stated: the obligation's verified figure has no dated history, so the current figure is
    used, provided the report had been verified (`verified_at`) before `cut`; an obligation not verified by
    then has no tonnage to count (it would settle as C) and is listed with `shortfall` None. A surrender
    reversed later (status no longer completed) is not counted, as the registry has no dated reversal here.
    """
    cut = end_of_business_day(day)
    ent = await ses.get(Enterprise, enterprise_id)
    if ent is None:
        raise NotFound("enterprise")
    periods = (
        await ses.execute(
            select(CompliancePeriod, ComplianceScheme)
            .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
            .where(ComplianceScheme.kind == "carbon")
            .order_by(CompliancePeriod.year, CompliancePeriod.id)
        )
    ).all()
    due = {p.id or 0: (p, sc, deadlines_of(sc, p)[0]) for p, sc in periods}
    due = {pid: v for pid, v in due.items() if v[2] <= cut}
    carbon_schemes = sorted({sc.id or 0 for _, sc in periods})
    detail: list[dict[str, Any]] = []
    open_t = 0
    obligations = (
        (await ses.execute(select(Obligation).where(Obligation.enterprise_id == enterprise_id,
                                                    Obligation.period_id.in_(list(due)))))  # type: ignore[attr-defined]
        .scalars().all() if due else []
    )
    settled_at = dict(
        (await ses.execute(select(SettlementResultRow.obligation_id, SettlementResultRow.settled_at).where(
            SettlementResultRow.obligation_id.in_([o.id for o in obligations])))).all()  # type: ignore[attr-defined]
    ) if obligations else {}
    verified_at = dict(
        (await ses.execute(select(ComplianceReport.period_id, ComplianceReport.verified_at).where(
            ComplianceReport.enterprise_id == enterprise_id,
            ComplianceReport.period_id.in_(list(due))))).all()  # type: ignore[attr-defined]
    ) if due else {}
    accounts = [a for (a,) in (await ses.execute(
        select(RegistryAccount.id).where(RegistryAccount.organisation_id == ent.organisation_id))).all()]
    for ob in obligations:
        period, _, deadline = due[ob.period_id]
        settled = settled_at.get(ob.id)
        row: dict[str, Any] = {"period_code": period.code, "deadline": deadline.isoformat(),
                               "settled": settled is not None and settled < cut}
        if row["settled"]:
            row["shortfall"] = None  # counted with the deductions below
        elif ob.verified_quantity is None or (verified_at.get(ob.period_id) or cut) >= cut:
            row["shortfall"] = None
            row["unverified"] = True
        else:
            surrendered = (await ses.execute(
                select(func.coalesce(func.sum(RegistryTransaction.quantity), 0)).where(
                    RegistryTransaction.from_account_id.in_(accounts),  # type: ignore[union-attr]
                    RegistryTransaction.period == period.code,
                    RegistryTransaction.code == "surrender",
                    RegistryTransaction.status == "completed",
                    RegistryTransaction.completed_at < cut,  # type: ignore[operator]
                ))).scalar_one() if accounts else 0
            row["surrendered"] = int(surrendered)
            row["shortfall"] = max(0, ob.verified_quantity - int(surrendered))
            open_t += row["shortfall"]
        detail.append(row)
    if carbon_schemes:
        created = (await ses.execute(
            select(func.coalesce(func.sum(AllocationDeduction.quantity), 0)).where(
                AllocationDeduction.enterprise_id == enterprise_id,
                AllocationDeduction.scheme_id.in_(carbon_schemes),  # type: ignore[attr-defined]
                AllocationDeduction.created_at < cut,  # type: ignore[operator]
            ))).scalar_one()
        applied = (await ses.execute(
            select(func.coalesce(func.sum(AllocationLine.deducted), 0))
            .join(AllocationTable, AllocationTable.id == AllocationLine.table_id)
            .join(CompliancePeriod, CompliancePeriod.id == AllocationTable.period_id)
            .where(
                AllocationLine.enterprise_id == enterprise_id,
                CompliancePeriod.scheme_id.in_(carbon_schemes),  # type: ignore[attr-defined]
                AllocationTable.posted_at.is_not(None),  # type: ignore[union-attr]
                AllocationTable.posted_at < cut,  # type: ignore[operator]
            ))).scalar_one()
        owed = max(0, int(created) - int(applied))
        open_t += owed
    else:
        owed = 0
    return {
        "enterprise_id": enterprise_id,
        "as_of": day.isoformat(),
        "open_shortfall": open_t > 0,
        "carbon_open_shortfall_t": open_t,
        "carbon_owed_after_settlement_t": owed,
        "carbon_periods": detail,
    }


async def get_compliance_status(ctx: ComplianceContext, who: Identity, enterprise_id: int) -> s.ComplianceStatusOut:
    async def work(uow: UnitOfWork) -> s.ComplianceStatusOut:
        if not await may_see_enterprise(uow.session, who, enterprise_id):
            raise NotFound("enterprise")
        return await _status(uow.session, enterprise_id)

    return await ctx.db.read(work)


async def _status(ses: AsyncSession, enterprise_id: int) -> s.ComplianceStatusOut:
    ent = await ses.get(Enterprise, enterprise_id)
    if ent is None:
        raise NotFound("enterprise")
    owed_rows = (
        await ses.execute(
            select(AllocationDeduction, ComplianceScheme, CompliancePeriod)
            .join(ComplianceScheme, ComplianceScheme.id == AllocationDeduction.scheme_id)
            .join(CompliancePeriod, CompliancePeriod.id == AllocationDeduction.source_period_id)
            .where(
                AllocationDeduction.enterprise_id == enterprise_id,
                AllocationDeduction.applied < AllocationDeduction.quantity,
            )
            .order_by(AllocationDeduction.id)
        )
    ).all()
    owed = [
        {
            "scheme_code": sc.code,
            "kind": sc.kind,
            "period_code": p.code,
            "pollutant": d.pollutant or None,
            "reason": d.reason,
            "owed": d.quantity - d.applied,
            "since": d.created_at.isoformat(),
        }
        for d, sc, p in owed_rows
    ]
    rows = (
        await ses.execute(
            select(SettlementResultRow, CompliancePeriod, ComplianceScheme)
            .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
            .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
            .where(SettlementResultRow.enterprise_id == enterprise_id)
            .order_by(CompliancePeriod.year, SettlementResultRow.id)
        )
    ).all()
    latest: dict[tuple[int, str], s.SchemeStatusOut] = {}
    for r, p, sc in rows:
        latest[(sc.id or 0, r.pollutant)] = s.SchemeStatusOut(
            scheme_code=sc.code,
            kind=sc.kind,
            period_code=p.code,
            year=p.year,
            pollutant=r.pollutant or None,
            status=r.status,
            timeliness=r.timeliness,
            shortfall=r.shortfall,
            fine_fen=r.fine_fen,
        )
    carbon_owed = sum(int(o["owed"] or 0) for o in owed if o["kind"] == "carbon")
    return s.ComplianceStatusOut(
        enterprise_id=enterprise_id,
        open_shortfall=bool(owed) or any(v.status == "B" for v in latest.values()),
        carbon_open_shortfall_t=carbon_owed,
        owed=owed,
        latest=list(latest.values()),
    )


async def list_fines(ctx: ComplianceContext, period_id: int | None = None) -> list[s.FineOut]:
    """For the finance context: every settled fine (fen), with its period, formula, citation and due date."""

    async def work(uow: UnitOfWork) -> list[s.FineOut]:
        q = (
            select(SettlementResultRow, Enterprise, CompliancePeriod, ComplianceScheme)
            .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
            .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
            .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
            .where(SettlementResultRow.fine_fen > 0)
        )
        if period_id is not None:
            q = q.where(SettlementResultRow.period_id == period_id)
        rows = (await uow.session.execute(q.order_by(SettlementResultRow.id))).all()
        return [
            s.FineOut(
                enterprise_id=e.id or 0,
                uscc=e.uscc,
                enterprise_name=e.name,
                period_id=p.id or 0,
                period_code=p.code,
                scheme_code=sc.code,
                kind=sc.kind,
                obligation_id=r.obligation_id,
                shortfall_at_deadline=r.shortfall_at_deadline,
                fine_fen=r.fine_fen,
                fine_formula=r.fine_formula,
                citation=r.citation,
                settled_at=r.settled_at,
                due_on=r.fine_due_on,
            )
            for r, e, p, sc in rows
        ]

    return await ctx.db.read(work)


def domain_result(r: SettlementResultRow) -> SettlementResult:
    return SettlementResult(
        obligation_id=str(r.obligation_id),
        enterprise_id=str(r.enterprise_id),
        city=r.city,
        industry=r.industry,
        kind=OBLIGATION_KIND[r.kind],
        pollutant=r.pollutant or None,
        status=Status(r.status),
        timeliness=Timeliness(r.timeliness),
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
    )


def _result_out(r: SettlementResultRow, e: Enterprise) -> s.SettlementResultOut:
    return s.SettlementResultOut(
        obligation_id=r.obligation_id,
        enterprise_id=r.enterprise_id,
        enterprise_name=e.name,
        uscc=e.uscc,
        city=r.city,
        industry=r.industry,
        kind=r.kind,
        pollutant=r.pollutant or None,
        status=r.status,
        timeliness=r.timeliness,
        report_late=r.report_late,
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_yuan=figures.yuan_plain(r.fine_fen),
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
        detail=json.loads(r.detail),
        fine_due_on=r.fine_due_on,
    )


def _group_out(g: Any) -> s.GroupTotalOut:
    return s.GroupTotalOut(
        dimension=g.dimension,
        key=g.key,
        kind=g.kind.value,
        pollutant=g.pollutant,
        enterprises=g.enterprises,
        compliant=g.compliant,
        shortfall_count=g.shortfall_count,
        not_reported=g.not_reported,
        late=g.late,
        obligation=g.obligation,
        surrendered=g.surrendered,
        shortfall=g.shortfall,
        forced=g.forced,
        fine_fen=g.fine_fen,
        next_allocation_deduction=g.next_allocation_deduction,
    )
