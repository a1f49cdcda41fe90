"""Look-ups and guards that the compliance use cases run inside their unit of work: a period with its scheme,
the authority that runs a scheme, an open period, the caller's (or the named) enterprise, an obligation, and the
registry accounts that allocations come from and go to.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.identity import Identity, Role
from registry.compliance._common import ALLOCATION_KIND
from registry.compliance.models import CompliancePeriod, ComplianceScheme, Obligation
from registry.domain.instruments import Kind
from registry.models import Enterprise, Instrument, RegistryAccount


async def load_period(ses: AsyncSession, period_id: int) -> tuple[CompliancePeriod, ComplianceScheme]:
    period = await ses.get(CompliancePeriod, period_id)
    if period is None:
        raise NotFound("compliance period")
    scheme = await ses.get(ComplianceScheme, period.scheme_id)
    assert scheme is not None
    return period, scheme


async def load_period_by_code(ses: AsyncSession, code: str) -> tuple[CompliancePeriod, ComplianceScheme]:
    period = (await ses.execute(select(CompliancePeriod).where(CompliancePeriod.code == code))).scalar_one_or_none()
    if period is None:
        raise NotFound("compliance period", field="period_key")
    return await load_period(ses, period.id or 0)


def require_authority(who: Identity, scheme: ComplianceScheme) -> None:
    if who.role.value != scheme.authority_role or who.organisation_id != scheme.authority_organisation_id:
        raise Forbidden(f"Only the authority running scheme {scheme.code} ({scheme.authority_role}) may do this.")


def require_open(period: CompliancePeriod) -> None:
    if period.status != "open":
        raise Conflict(
            "period-closed",
            f"Period {period.code} is {period.status}; it takes no more changes.",
            field="period_id",
        )


def require_reporting(scheme: ComplianceScheme) -> None:
    if scheme.kind == "green_power":
        raise InvalidInput("period_id", "Green-power quotas are proven by retired certificates, not reports.")


def check_instrument(scheme: ComplianceScheme, inst: Instrument) -> None:
    want = ALLOCATION_KIND[scheme.kind]
    if inst.kind != want.value or (want is Kind.CEA and inst.scheme != scheme.cea_scheme):
        raise InvalidInput(
            "instrument_id",
            f"Scheme {scheme.code} allocates {want.value}"
            + (f" of the {scheme.cea_scheme} scheme" if want is Kind.CEA else "")
            + ".",
        )


async def own_enterprise(ses: AsyncSession, who: Identity) -> Enterprise:
    ent = (
        await ses.execute(select(Enterprise).where(Enterprise.organisation_id == who.organisation_id))
    ).scalar_one_or_none()
    if ent is None:
        raise NotFound("enterprise")
    return ent


async def reporting_enterprise(
    ses: AsyncSession, who: Identity, scheme: ComplianceScheme, enterprise_id: int | None
) -> Enterprise:
    if who.role is Role.EMITTER:
        own = await own_enterprise(ses, who)
        if enterprise_id is not None and enterprise_id != own.id:
            raise NotFound("enterprise", field="enterprise_id")
        return own
    require_authority(who, scheme)
    if enterprise_id is None:
        raise InvalidInput("enterprise_id", "Name the enterprise whose report this is.")
    ent = await ses.get(Enterprise, enterprise_id)
    if ent is None:
        raise NotFound("enterprise", field="enterprise_id")
    return ent


async def may_see_enterprise(ses: AsyncSession, who: Identity, enterprise_id: int) -> bool:
    if who.reads_all() or who.role in (Role.VERIFIER, Role.BANK, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER):
        return True
    ent = await ses.get(Enterprise, enterprise_id)
    return ent is not None and ent.organisation_id == who.organisation_id


async def find_obligation(ses: AsyncSession, period_id: int, enterprise_id: int, pollutant: str) -> Obligation | None:
    return (
        await ses.execute(
            select(Obligation).where(
                Obligation.period_id == period_id,
                Obligation.enterprise_id == enterprise_id,
                Obligation.pollutant == pollutant,
            )
        )
    ).scalar_one_or_none()


async def ensure_obligation(
    ses: AsyncSession, period: CompliancePeriod, enterprise_id: int, pollutant: str, now: dt.datetime
) -> Obligation:
    ob = await find_obligation(ses, period.id or 0, enterprise_id, pollutant)
    if ob is None:
        ob = Obligation(
            period_id=period.id or 0,
            enterprise_id=enterprise_id,
            pollutant=pollutant,
            created_at=now,
            updated_at=now,
        )
        ses.add(ob)
        await ses.flush()
    return ob


async def allocation_account(ses: AsyncSession, organisation_id: int) -> RegistryAccount:
    account = (
        (
            await ses.execute(
                select(RegistryAccount)
                .where(RegistryAccount.organisation_id == organisation_id, RegistryAccount.type == "allocation")
                .order_by(RegistryAccount.id)
            )
        )
        .scalars()
        .first()
    )
    if account is None:
        raise AppError(
            "unknown-account",
            "Open an allocation account first (openAccount with type 'allocation').",
            field="instrument_id",
        )
    return account


async def holding_account(ses: AsyncSession, ent: Enterprise, account_id: int | None) -> RegistryAccount | None:
    q = select(RegistryAccount).where(
        RegistryAccount.organisation_id == ent.organisation_id, RegistryAccount.type == "holding"
    )
    if account_id is not None:
        q = q.where(RegistryAccount.id == account_id)
    return (await ses.execute(q.order_by(RegistryAccount.id))).scalars().first()
