"""Obligations and the provincial reserve: the authority names the enterprises obligated in a period (and sets
green-power quotas), orders a forced surrender from the reserve for an at-risk carbon emitter, and funds the
reserve from its allocation account through the registry's ledger path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.identity import Identity
from core.quantity import parse_quantity
from registry.compliance import schemas as s
from registry.compliance._common import calendar_of, deadlines_of, pollutants_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceReport, ComplianceScheme, Obligation
from registry.compliance.queries import (
    allocation_account,
    ensure_obligation,
    find_obligation,
    load_period,
    may_see_enterprise,
    require_authority,
    require_open,
)
from registry.compliance.surrender import energy_obligation, surrendered_so_far
from registry.domain import calendar as cal
from registry.domain.instruments import Kind
from registry.domain.violations import Rejected
from registry.models import Enterprise, RegistryTransaction


async def register_obligations(
    ctx: ComplianceContext, who: Identity, period_id: int, req: s.RegisterObligations
) -> list[s.ObligationOut]:
    """Name the enterprises obligated in a period (those without an allocation or a report yet), so that
    the settlement finds them (status C if they never report). Green-power quotas are set here too."""
    if not 1 <= len(req.enterprise_ids) <= 10_000:
        raise InvalidInput("enterprise_ids", "Name 1 to 10,000 enterprises.")

    async def work(uow: UnitOfWork) -> list[s.ObligationOut]:
        ses = uow.session
        period, scheme = await load_period(ses, period_id)
        require_authority(who, scheme)
        require_open(period)
        pollutant = req.pollutant or ""
        if scheme.kind == "discharge" and pollutant not in pollutants_of(ctx, period.year):
            raise InvalidInput("pollutant", f"Give one of: {', '.join(sorted(pollutants_of(ctx, period.year)))}.")
        if scheme.kind != "discharge" and pollutant:
            raise InvalidInput("pollutant", "Only discharge obligations name a pollutant.")
        quota: int | None = None
        if scheme.kind == "green_power":
            if req.quota is None:
                raise InvalidInput("quota", "A green-power obligation is a quota of MWh; give it.")
            quota = parse_quantity(req.quota, scale=0, field="quota")
        elif req.quota is not None:
            raise InvalidInput("quota", "Only green-power obligations are set as a quota.")
        found = set(
            (await ses.execute(select(Enterprise.id).where(Enterprise.id.in_(req.enterprise_ids)))).scalars()  # type: ignore[attr-defined]
        )
        missing = [e for e in req.enterprise_ids if e not in found]
        if missing:
            raise AppError("not-found", f"No enterprises with ids {missing[:20]}.", field="enterprise_ids")
        now = ctx.clock.now()
        out = []
        for ent_id in dict.fromkeys(req.enterprise_ids):
            ob = await ensure_obligation(ses, period, ent_id, pollutant, now)
            if quota is not None:
                ob.verified_quantity = quota
                ob.updated_at = now
            out.append(_obligation_out(ob))
        uow.audit(
            who.actor,
            "compliance.obligations.register",
            "compliance_period",
            str(period.id),
            {"enterprises": list(dict.fromkeys(req.enterprise_ids)), "pollutant": pollutant, "quota": quota},
        )
        return out

    return await ctx.db.run(work)


async def order_forced_surrender(
    ctx: ComplianceContext, who: Identity, period_id: int, req: s.OrderForcedSurrender
) -> s.ObligationOut:
    """Order that part of an at-risk enterprise's carbon obligation be surrendered from the provincial reserve
    at settlement (2023 MEE notice); the enterprise then owes it back from its next allocation."""
    quantity = parse_quantity(req.quantity, scale=0)

    async def work(uow: UnitOfWork) -> s.ObligationOut:
        ses = uow.session
        period, scheme = await load_period(ses, period_id)
        require_authority(who, scheme)
        require_open(period)
        if scheme.kind != "carbon":
            raise InvalidInput("period_id", "Forced surrender from the reserve exists for carbon only.")
        ob = await find_obligation(ses, period.id or 0, req.enterprise_id, "")
        if ob is None:
            raise NotFound("obligation of this enterprise in this period", field="enterprise_id")
        ob.forced_surrender_ordered = quantity
        ob.updated_at = ctx.clock.now()
        uow.audit(
            who.actor,
            "compliance.forced_surrender.order",
            "compliance_obligation",
            str(ob.id),
            {"period": period.code, "enterprise_id": req.enterprise_id, "quantity": quantity},
        )
        return _obligation_out(ob)

    return await ctx.db.run(work)


async def fund_reserve(
    ctx: ComplianceContext, who: Identity, req: s.FundReserve, request_key: str | None
) -> dict[str, Any]:
    """Move allowances from the regulator's allocation account into the provincial reserve (储备) account."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        if request_key is not None:
            prior = (
                await ses.execute(select(RegistryTransaction).where(RegistryTransaction.request_key == request_key))
            ).scalar_one_or_none()
            if prior is not None:
                return {
                    "transaction_id": prior.id,
                    "quantity": prior.quantity,
                    "instrument_id": prior.instrument_id,
                }
        inst = await ctx.registry._instrument(ses, req.instrument_id)
        if inst.kind != Kind.CEA.value:
            raise InvalidInput("instrument_id", "The provincial reserve holds carbon allowances (CEA).")
        quantity = parse_quantity(req.quantity, scale=0)
        source = await allocation_account(ses, who.organisation_id)
        reserve = await ctx.registry._system_account(ses, "reserve")
        now = ctx.clock.now()
        tx = await ctx.registry.record_and_move(
            ses,
            RegistryTransaction(
                code="reserve_funding",
                instrument_id=inst.id or 0,
                from_account_id=source.id,
                to_account_id=reserve.id,
                quantity=quantity,
                initiated_by=who.principal_id,
                initiator_organisation_id=who.organisation_id,
                request_key=request_key,
                created_at=now,
            ),
            inst,
            source,
            reserve,
            now,
        )
        uow.audit(
            who.actor,
            "compliance.reserve.fund",
            "transaction",
            str(tx.id),
            {"instrument": inst.code, "quantity": quantity},
        )
        return {"transaction_id": tx.id, "quantity": quantity, "instrument_id": inst.id}

    return await ctx.db.run(work)


def _obligation_out(o: Obligation) -> s.ObligationOut:
    return s.ObligationOut(
        id=o.id or 0,
        period_id=o.period_id,
        enterprise_id=o.enterprise_id,
        pollutant=o.pollutant or None,
        verified_quantity=o.verified_quantity,
        forced_surrender_ordered=o.forced_surrender_ordered,
    )


async def enterprise_obligations(
    ctx: ComplianceContext, who: Identity, enterprise_id: int
) -> list[s.EnterpriseObligationOut]:
    """Every obligation of one enterprise, newest period first, with what it surrendered so far, what remains and
    the period's deadlines (the same figures the surrender check uses). 404 for an enterprise the caller may not
    see (another enterprise's staff)."""

    async def work(uow: UnitOfWork) -> list[s.EnterpriseObligationOut]:
        ses = uow.session
        if not await may_see_enterprise(ses, who, enterprise_id):
            raise NotFound("enterprise")
        ent = await ses.get(Enterprise, enterprise_id)
        if ent is None:
            raise NotFound("enterprise")
        rows = (
            await ses.execute(
                select(Obligation, CompliancePeriod, ComplianceScheme)
                .join(CompliancePeriod, CompliancePeriod.id == Obligation.period_id)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .where(Obligation.enterprise_id == enterprise_id)
                .order_by(CompliancePeriod.year.desc(), Obligation.id)  # type: ignore[attr-defined]
                .limit(500)
            )
        ).all()
        report_status = dict(
            (
                await ses.execute(
                    select(ComplianceReport.period_id, ComplianceReport.status).where(
                        ComplianceReport.enterprise_id == enterprise_id
                    )
                )
            ).all()
        )
        out = []
        for ob, period, scheme in rows:
            event = calendar_of(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE)
            _, close = deadlines_of(scheme, period)
            quantity = ob.verified_quantity
            if quantity is not None and scheme.kind == "energy":
                energy = await energy_obligation(ctx, ses, period, ob, ent.organisation_id, close)
                if not isinstance(energy, Rejected):
                    quantity = energy.obligation_kgce
            so_far = await surrendered_so_far(ses, period, ent.organisation_id, ob.pollutant or "")
            out.append(
                s.EnterpriseObligationOut(
                    period_id=period.id or 0,
                    period_code=period.code,
                    scheme_code=scheme.code,
                    kind=scheme.kind,
                    year=period.year,
                    period_status=period.status,
                    pollutant=ob.pollutant or None,
                    obligation=quantity,
                    surrendered=so_far.total,
                    remaining=None if quantity is None else max(quantity - so_far.total, 0),
                    report_status=report_status.get(period.id),
                    surrender_deadline=event.business_date,
                    surrender_due_before=event.due_before,
                    late_until=period.late_until,
                )
            )
        return out

    return await ctx.db.read(work)
