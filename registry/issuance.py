"""Issuance and allocation. An issuing authority proposes new units of a unit class (the instrument is created on
first issue) into its allocation account or a named one; a second person of the same authority approves it
(`transfers.approve_transfer`). Allocation moves units at once from an authority's allocation account to a holder.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Forbidden, InvalidInput
from core.identity import Identity
from core.quantity import parse_quantity
from registry import schemas as s
from registry._common import facts, move, raise_first, record_and_move, tx_out
from registry.context import RegistryContext
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind, UnitClass, valid_until, validate_unit_class
from registry.models import Instrument, RegistryAccount, RegistryTransaction
from registry.queries import (
    INSTRUMENTS,
    allocation_account,
    any_user_account,
    by_request_key,
    instrument,
    own_account,
    system_account,
)


async def issue_units(
    ctx: RegistryContext, who: Identity, req: s.IssueUnits, request_key: str | None
) -> s.TransactionOut:
    kind = Kind(req.kind)
    rule = KIND_RULES[kind]
    if who.role.value != rule.issuer_role:
        raise Forbidden(f"Only the {rule.issuer_role} issues {kind.value}.")
    uc = UnitClass(
        kind=kind,
        scheme=req.scheme,
        vintage=req.vintage,
        project_id=req.project_id,
        region=req.region,
        pollutant=req.pollutant,
        technology=req.technology,
        production_month=req.production_month,
        generator=req.generator,
        tradable=req.tradable,
    )
    errors = validate_unit_class(uc)
    if errors:
        field, msg = next(iter(errors.items()))
        raise InvalidInput(field, msg, extra={"errors": [{"field": f, "detail": m} for f, m in errors.items()]})
    quantity = parse_quantity(req.quantity, scale=rule.scale)

    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        if (prior := await by_request_key(ses, request_key)) is not None:
            return await tx_out(ses, prior)
        now = ctx.clock.now()
        inst = await _ensure_instrument(ses, uc, who.organisation_id, now)
        if req.to_account_id is None:
            dest = await allocation_account(ses, who)
        else:
            dest = await ses.get(RegistryAccount, req.to_account_id)
            if dest is None or dest.type not in checks.USER_ACCOUNT_TYPES:
                raise AppError("unknown-account", "No such account.", field="to_account_id")
        raise_first(checks.check_status(facts(dest), "to_account_id", acquiring=True))
        source = await system_account(ses, "issuance")
        tx = RegistryTransaction(
            code="issuance",
            status="awaiting_approval",
            instrument_id=inst.id or 0,
            from_account_id=source.id,
            to_account_id=dest.id,
            quantity=quantity,
            initiated_by=who.principal_id,
            initiator_organisation_id=who.organisation_id,
            request_key=request_key,
            created_at=now,
        )
        ses.add(tx)
        await ses.flush()
        # The hold reserves nothing real (issuance accounts are sources) but makes the approval a ledger fact.
        tx.hold_transfer_id = await move(ses, tx, inst, source, dest, quantity, now, pending=True)
        uow.audit(
            who.actor,
            "units.issue.propose",
            "transaction",
            str(tx.id),
            {"instrument": inst.code, "quantity": quantity, "to": dest.id},
        )
        return await tx_out(ses, tx)

    return await ctx.db.run(work)


async def allocate_units(
    ctx: RegistryContext, who: Identity, req: s.AllocateUnits, request_key: str | None
) -> s.TransactionOut:
    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        if (prior := await by_request_key(ses, request_key)) is not None:
            return await tx_out(ses, prior)
        inst = await instrument(ses, req.instrument_id)
        if KIND_RULES[Kind(inst.kind)].issuer_role != who.role.value:
            raise Forbidden(f"Only the {KIND_RULES[Kind(inst.kind)].issuer_role} allocates {inst.kind}.")
        quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
        if req.from_account_id is None:
            source = await allocation_account(ses, who)
        else:
            source = await own_account(ses, who, req.from_account_id, "from_account_id")
        dest = await any_user_account(ses, req.to_account_id, "to_account_id")
        now = ctx.clock.now()
        raise_first(
            checks.check_transfer(
                facts(source),
                facts(dest),
                Kind(inst.kind),
                tradable=True,
                expires_on=inst.valid_until,
                today=business_date(now),
            )
        )
        tx = await record_and_move(
            ses,
            RegistryTransaction(
                code="allocation",
                instrument_id=inst.id or 0,
                from_account_id=source.id,
                to_account_id=dest.id,
                quantity=quantity,
                initiated_by=who.principal_id,
                initiator_organisation_id=who.organisation_id,
                request_key=request_key,
                created_at=now,
            ),
            inst,
            source,
            dest,
            now,
        )
        uow.audit(
            who.actor,
            "units.allocate",
            "transaction",
            str(tx.id),
            {"instrument": inst.code, "quantity": quantity, "from": source.id, "to": dest.id},
        )
        return await tx_out(ses, tx)

    return await ctx.db.run(work)


async def _ensure_instrument(ses: AsyncSession, uc: UnitClass, issuer_org: int, now: dt.datetime) -> Instrument:
    code = uc.code()
    lookup = select(Instrument).where(Instrument.code == code)
    inst = (await ses.execute(lookup)).scalar_one_or_none()
    if inst is not None:
        return inst
    rule = KIND_RULES[uc.kind]
    asset = await ledger.ensure_asset(ses, code, scale=rule.scale, serialised=True)
    inst = Instrument(
        code=code,
        asset_id=asset.id or 0,
        kind=uc.kind.value,
        scheme=uc.scheme,
        vintage=uc.vintage,
        project_id=uc.project_id,
        region=uc.region,
        pollutant=uc.pollutant,
        technology=uc.technology,
        production_month=uc.production_month,
        generator=uc.generator,
        tradable=uc.tradable,
        valid_until=valid_until(uc),
        issuer_organisation_id=issuer_org,
        created_at=now,
    )
    found = await ledger.insert_or_get(ses, inst, lookup)
    if found is inst:
        INSTRUMENTS.created(ses, inst.id or 0)  # not cached by this unit of work (core/cache.py)
    return found
