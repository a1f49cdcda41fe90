"""The surrender rules, as the registry's hook (`RegistryService.surrender_policy`): inside the registry's surrender
transaction and by the server clock, refuse a surrender that breaks a compliance rule (closed period, ineligible
instrument or vintage, offset cap, above the obligation), listing every failed condition; and the energy-use
obligation net of the green certificates an enterprise retired, which the settlement reads too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.errors import AppError, Conflict
from core.identity import Identity
from core.models import LedgerAccount
from registry.compliance._common import OBLIGATION_KIND, deadlines_of, electricity_of, raise_violations
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceScheme, Obligation, ReportVersion
from registry.compliance.queries import find_obligation
from registry.domain import accounting as acc
from registry.domain import surrender as sur
from registry.domain.instruments import Kind
from registry.domain.violations import Rejected, Violation
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction

# The registry instrument kinds that can cover each scheme's obligation, as the pure surrender rules name them.
INSTRUMENT_KIND = {
    Kind.CEA: sur.InstrumentKind.ALLOWANCE,
    Kind.CCER: sur.InstrumentKind.OFFSET,
    Kind.ENERGY_USE: sur.InstrumentKind.ENERGY_RIGHT,
    Kind.DISCHARGE: sur.InstrumentKind.DISCHARGE_PERMIT,
}
_SURRENDER_FIELDS = {
    "period-closed": "period",
    "insufficient-available": "quantity",
    "offset-cap-exceeded": "quantity",
    "surrender-above-obligation": "quantity",
    "quantity-not-positive": "quantity",
}


async def check_surrender(
    ctx: ComplianceContext,
    ses: AsyncSession,
    who: Identity,
    account: RegistryAccount,
    instrument: Instrument,
    quantity: int,
    period: str,
    now: dt.datetime,
) -> None:
    """Refuse a surrender that breaks a compliance rule, listing every failed condition. Runs inside the
    registry's surrender transaction; `now` is the server's clock."""
    la = (
        await ses.execute(
            select(LedgerAccount).where(
                LedgerAccount.owner_kind == "registry",
                LedgerAccount.owner_id == account.id,
                LedgerAccount.asset_id == instrument.asset_id,
            )
        )
    ).scalar_one_or_none()
    available = 0 if la is None else la.credits_posted - la.debits_posted - la.debits_pending
    found = (await ses.execute(select(CompliancePeriod).where(CompliancePeriod.code == period))).scalar_one_or_none()
    if found is None:
        if quantity > available:
            raise Conflict(
                "insufficient-available",
                f"Only {figures.quantity(available)} base units are available; "
                f"{figures.quantity(quantity)} were asked for.",
                field="quantity",
                extra={"available": available, "requested": quantity},
            )
        raise AppError(
            "not-found",
            f"No compliance period with code {period!r}; name the period as listed by listPeriods (e.g. CN-CEA-2025).",
            field="period",
        )
    await _check_against_period(ctx, ses, account, instrument, quantity, found, available, now)


async def _check_against_period(
    ctx: ComplianceContext,
    ses: AsyncSession,
    account: RegistryAccount,
    instrument: Instrument,
    quantity: int,
    period: CompliancePeriod,
    available: int,
    now: dt.datetime,
) -> None:
    scheme = await ses.get(ComplianceScheme, period.scheme_id)
    assert scheme is not None
    deadline, close = deadlines_of(scheme, period)
    closed = period.status != "open" or now >= close
    pre: list[Violation] = []
    if closed:
        pre.append(
            Violation(
                "period-closed",
                "period",
                "The surrender period is closed: the deadline has passed (server time) or the period is being settled.",
                (("at", now.isoformat()), ("deadline", deadline.isoformat()), ("closes", close.isoformat())),
            )
        )
    kind = INSTRUMENT_KIND.get(Kind(instrument.kind))
    obligation_kind = OBLIGATION_KIND[scheme.kind]
    if (
        scheme.kind == "green_power"
        or kind is None
        or kind not in sur.ACCEPTED_KINDS[obligation_kind]
        or (instrument.kind == Kind.CEA.value and instrument.scheme != scheme.cea_scheme)
    ):
        pre.append(
            Violation(
                "instrument-not-eligible",
                "instrument_id",
                f"{instrument.code} cannot cover an obligation of scheme {scheme.code}.",
            )
        )
    if quantity > available:
        pre.append(
            Violation(
                "insufficient-available",
                "quantity",
                f"{figures.quantity(quantity)} units requested but only {figures.quantity(available)} available",
                (("available", str(available)), ("requested", str(quantity))),
            )
        )
    if pre:
        raise_violations(pre, field_map=_SURRENDER_FIELDS)
    assert kind is not None
    ent = (
        await ses.execute(select(Enterprise).where(Enterprise.organisation_id == account.organisation_id))
    ).scalar_one_or_none()
    pollutant = (instrument.pollutant or "") if scheme.kind == "discharge" else ""
    ob = None if ent is None else await find_obligation(ses, period.id or 0, ent.id or 0, pollutant)
    if ent is None or ob is None or ob.verified_quantity is None:
        raise AppError(
            "no-verified-obligation",
            f"This enterprise has no verified {scheme.kind} obligation in "
            f"{period.code} yet; surrender after its report is verified.",
            field="period",
        )
    assert ent.id is not None
    obligation_quantity = ob.verified_quantity
    if scheme.kind == "energy":
        energy = await energy_obligation(ctx, ses, period, ob, ent.organisation_id, close)
        if not isinstance(energy, Rejected):
            obligation_quantity = energy.obligation_kgce
    so_far = await surrendered_so_far(ses, period, ent.organisation_id, pollutant)
    rules = sur.SurrenderRules(
        eligible_vintages=frozenset(json.loads(period.eligible_vintages)),
        deadline=deadline,
        offset_cap_bps=period.offset_cap_bps,
        eligible_offset_vintages=(
            frozenset(json.loads(period.eligible_offset_vintages))
            if period.eligible_offset_vintages is not None
            else None
        ),
        late_until=close if period.late_until is not None else None,
    )
    holding = sur.Holding(str(instrument.id), kind, instrument.vintage or period.year, available, instrument.pollutant)
    plan = sur.validate_surrender(
        sur.Obligation(obligation_kind, obligation_quantity, pollutant or None),
        [sur.SurrenderLine(str(instrument.id), quantity)],
        [holding],
        rules,
        so_far,
        at=now,
        period_closed=period.status != "open",
    )
    if isinstance(plan, Rejected):
        raise_violations(plan.violations, field_map=_SURRENDER_FIELDS)


async def surrendered_so_far(
    ses: AsyncSession, period: CompliancePeriod, organisation_id: int, pollutant: str
) -> sur.SurrenderedSoFar:
    q = (
        select(RegistryTransaction.quantity, Instrument.kind, RegistryTransaction.status)
        .join(RegistryAccount, RegistryAccount.id == RegistryTransaction.from_account_id)
        .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
        .where(
            RegistryTransaction.period == period.code,
            RegistryTransaction.code == "surrender",
            RegistryAccount.organisation_id == organisation_id,
        )
    )
    if pollutant:
        q = q.where(Instrument.pollutant == pollutant)
    total = offsets = 0
    for qty, kind, status in (await ses.execute(q)).all():
        if status != "completed":
            continue
        total += qty
        offsets += qty if kind == Kind.CCER.value else 0
    return sur.SurrenderedSoFar(total, offsets)


async def energy_obligation(
    ctx: ComplianceContext,
    ses: AsyncSession,
    period: CompliancePeriod,
    ob: Obligation,
    organisation_id: int,
    close: dt.datetime,
    retired: int | None = None,
    totals: dict[str, Any] | None = None,
) -> sur.EnergyObligation | Rejected:
    """Verified kgce less the electricity proven green by certificates the enterprise retired (claimed)."""
    if totals is None:
        version = await ses.get(ReportVersion, ob.report_version_id) if ob.report_version_id else None
        totals = json.loads(version.totals) if version is not None else {}
    if retired is None:
        retired = (await retired_gec_mwh(ses, period.year, [organisation_id], close)).get(organisation_id, 0)
    basis = acc.ElectricityBasis(totals.get("electricity_basis", "equivalent"))
    factor = totals.get("electricity_kgce_per_kwh")
    conversion = (
        acc.electricity_conversion(basis, Decimal(factor), totals.get("electricity_citation", ""))
        if basis is acc.ElectricityBasis.EQUIVALENT and factor
        else electricity_of(ctx, period.year)
    )
    return sur.energy_obligation(
        ob.verified_quantity or 0,
        basis,
        retired,
        conversion,
        electricity_consumed_mwh=totals.get("electricity_mwh"),
    )


async def retired_gec_mwh(
    ses: AsyncSession, year: int, organisation_ids: Sequence[int], before: dt.datetime
) -> dict[int, int]:
    """MWh of green certificates produced in `year` that each organisation retired (claimed) before `before`."""
    if not organisation_ids:
        return {}
    rows = (
        await ses.execute(
            select(RegistryAccount.organisation_id, func.sum(RegistryTransaction.quantity))
            .join(RegistryAccount, RegistryAccount.id == RegistryTransaction.from_account_id)
            .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
            .where(
                # A retirement is recorded completed when it posts; the status is not filtered in SQL so that
                # the planner searches by account (the status index would scan every completed transaction).
                RegistryTransaction.code == "retirement",
                Instrument.kind == Kind.GEC.value,
                Instrument.production_month.like(f"{year}-%"),  # type: ignore[union-attr]
                RegistryTransaction.completed_at < before,  # type: ignore[operator]
                RegistryAccount.organisation_id.in_(list(organisation_ids)),  # type: ignore[attr-defined]
            )
            .group_by(RegistryAccount.organisation_id)
        )
    ).all()
    return {org: int(total or 0) for org, total in rows}
