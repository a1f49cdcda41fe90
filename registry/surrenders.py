"""Surrender and retirement: units leave a holder's account for the surrender or retirement account for good.
A surrender counts against a compliance period (the regulator may surrender from any account) and is judged,
inside its unit of work, by the surrender policy the compliance cycle installs (`RegistryContext.surrender_policy`);
a retirement (green certificates are retired, i.e. claimed, not surrendered) names its beneficiary and purpose.
"""

from __future__ import annotations

import json

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import InvalidInput
from core.events import emit
from core.identity import Identity, Role
from core.quantity import parse_quantity
from core.text import clean_text
from registry import schemas as s
from registry._common import facts, raise_first, record_and_move, tx_out
from registry.context import RegistryContext
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import RegistryTransaction
from registry.queries import any_user_account, by_request_key, instrument, own_account, system_account


async def surrender_units(
    ctx: RegistryContext, who: Identity, req: s.SurrenderUnits, request_key: str | None
) -> s.TransactionOut:
    period = clean_text(req.period, "period", max_len=16)
    return await _to_system(
        ctx, who, "surrender", req.account_id, req.instrument_id, req.quantity, request_key, period=period, details={}
    )


async def retire_units(
    ctx: RegistryContext, who: Identity, req: s.RetireUnits, request_key: str | None
) -> s.TransactionOut:
    beneficiary = clean_text(req.beneficiary, "beneficiary", max_len=200)
    purpose = clean_text(req.purpose, "purpose", max_len=500, required=False)
    return await _to_system(
        ctx,
        who,
        "retirement",
        req.account_id,
        req.instrument_id,
        req.quantity,
        request_key,
        period=None,
        details={"beneficiary": beneficiary, "purpose": purpose},
    )


async def _to_system(
    ctx: RegistryContext,
    who: Identity,
    code: str,
    account_id: int,
    instrument_id: int,
    raw_quantity: object,
    request_key: str | None,
    *,
    period: str | None,
    details: dict[str, str],
) -> s.TransactionOut:
    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        if (prior := await by_request_key(ses, request_key)) is not None:
            return await tx_out(ses, prior)
        if who.role == Role.REGULATOR and code == "surrender":
            acc = await any_user_account(ses, account_id, "account_id")
        else:
            acc = await own_account(ses, who, account_id, "account_id")
        inst = await instrument(ses, instrument_id)
        kind = Kind(inst.kind)
        quantity = parse_quantity(raw_quantity, scale=KIND_RULES[kind].scale)
        now = ctx.clock.now()
        raise_first(
            checks.check_status(facts(acc), "account_id", acquiring=False)
            + checks.check_not_expired(inst.valid_until, business_date(now))
        )
        if code == "surrender" and not KIND_RULES[kind].surrenderable:
            raise InvalidInput("instrument_id", "Green certificates are retired (claimed), not surrendered.")
        if code == "surrender" and ctx.surrender_policy is not None:
            await ctx.surrender_policy(ses, who, acc, inst, quantity, period or "", now)
        target = await system_account(ses, code)
        tx = await record_and_move(
            ses,
            RegistryTransaction(
                code=code,
                instrument_id=inst.id or 0,
                from_account_id=acc.id,
                to_account_id=target.id,
                quantity=quantity,
                initiated_by=who.principal_id,
                initiator_organisation_id=who.organisation_id,
                request_key=request_key,
                period=period,
                details=json.dumps(details, ensure_ascii=False),
                created_at=now,
            ),
            inst,
            acc,
            target,
            now,
        )
        emit(
            ses,
            "surrender.recorded",
            {
                "transaction_id": tx.id,
                "account_id": acc.id,
                "instrument_code": inst.code,
                "quantity": figures.quantity_plain(quantity, KIND_RULES[kind].scale),
                "period": period,
                "purpose": code,
            },
            to=(acc.organisation_id,),
            subject=f"transaction:{tx.id}",
        )
        uow.audit(
            who.actor,
            f"units.{code}",
            "transaction",
            str(tx.id),
            {"account": acc.id, "instrument": inst.code, "quantity": quantity, "period": period, **details},
        )
        return await tx_out(ses, tx)

    return await ctx.db.run(work)
