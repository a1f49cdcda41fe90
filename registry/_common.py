"""What the registry's use cases share: the ledger path every movement of units takes (a registry account's
ledger account per instrument, the transfer of a registry transaction, and recording a transaction that completes
at once), the first failed check raised as the problem (listing every one), and the answers the API gives for
enterprises, accounts, instruments and transactions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.errors import AppError
from core.models import LedgerAccount
from registry import schemas as s
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction
from registry.queries import instrument

# The `owner_kind` of every ledger account that belongs to a registry account.
OWNER = "registry"

Move = Callable[..., Awaitable[int]]


def raise_first(failures: list[checks.Failure]) -> None:
    if failures:
        slug, field, msg = failures[0]
        extra = (
            {"errors": [{"type": f, "field": fl, "detail": m} for f, fl, m in failures]} if len(failures) > 1 else None
        )
        raise AppError(slug, msg, field=field, extra=extra)


def facts(acc: RegistryAccount) -> checks.AccountFacts:
    return checks.AccountFacts(id=acc.id or 0, type=acc.type, status=acc.status)


# ---------------------------------------------------------------------------------------------- the ledger path
async def ledger_account(ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> LedgerAccount:
    return await ledger.ensure_account(
        ses, asset_id=inst.asset_id, owner_kind=OWNER, owner_id=acc.id or 0, role=acc.type
    )


async def move(
    ses: AsyncSession,
    tx: RegistryTransaction,
    inst: Instrument,
    source: RegistryAccount,
    dest: RegistryAccount,
    quantity: int,
    now: dt.datetime,
    *,
    pending: bool = False,
) -> int:
    # Ids and roles of ledger accounts never change: after first use they come from the process cache.
    debit = await ledger.account_ref(
        ses, asset_id=inst.asset_id, owner_kind=OWNER, owner_id=source.id or 0, role=source.type
    )
    credit = await ledger.account_ref(
        ses, asset_id=inst.asset_id, owner_kind=OWNER, owner_id=dest.id or 0, role=dest.type
    )
    result = await ledger.create_transfer(
        ses,
        client_id=f"rtx:{tx.id}",
        debit_account_id=debit.id or 0,
        credit_account_id=credit.id or 0,
        asset_id=inst.asset_id,
        amount=quantity,
        code=tx.code,
        now=now,
        pending=pending,
        ref=f"rtx:{tx.id}",
        accounts=(debit, credit),
        serialised=True,
        fresh_client_id=True,
    )
    return result.id


async def record_and_move(
    ses: AsyncSession,
    tx: RegistryTransaction,
    inst: Instrument,
    source: RegistryAccount,
    dest: RegistryAccount,
    now: dt.datetime,
    *,
    move: Move = move,
) -> RegistryTransaction:
    """Record a registry transaction that completes at once and move its units through the ledger, in the
    caller's unit of work (allocation, surrender, retirement, expiry, reserve funding, forced surrender).

    `move` is the facade's `RegistryService._move` when another context records through the facade, so that
    the facade's `_move` stays the one place a test can make the ledger fail (a connection lost mid-batch)."""
    tx.status = "completed"
    tx.completed_at = now
    ses.add(tx)
    await ses.flush()
    await move(ses, tx, inst, source, dest, tx.quantity, now)
    return tx


# ---------------------------------------------------------------------------------------------- answers
async def tx_out(ses: AsyncSession, tx: RegistryTransaction) -> s.TransactionOut:
    inst = await instrument(ses, tx.instrument_id)
    return s.TransactionOut(
        id=tx.id or 0,
        code=tx.code,
        status=tx.status,
        instrument_id=inst.id or 0,
        instrument_code=inst.code,
        from_account_id=tx.from_account_id,
        to_account_id=tx.to_account_id,
        quantity=figures.quantity_plain(tx.quantity, KIND_RULES[Kind(inst.kind)].scale),
        quantity_base=tx.quantity,
        initiated_by=tx.initiated_by,
        approved_by=tx.approved_by,
        execute_after=tx.execute_after,
        period=tx.period,
        details={k: str(v) for k, v in json.loads(tx.details).items()},
        created_at=tx.created_at,
        completed_at=tx.completed_at,
    )


def enterprise_out(e: Enterprise) -> s.EnterpriseOut:
    return s.EnterpriseOut(
        id=e.id or 0,
        organisation_id=e.organisation_id,
        uscc=e.uscc,
        name=e.name,
        city=e.city,
        industry_code=e.industry_code,
        is_key_emitter=e.is_key_emitter,
        is_sme=e.is_sme,
        is_high_tech=e.is_high_tech,
        created_at=e.created_at,
    )


def account_out(a: RegistryAccount) -> s.AccountOut:
    return s.AccountOut(
        id=a.id or 0,
        organisation_id=a.organisation_id,
        type=a.type,
        status=a.status,
        label=a.label,
        created_at=a.created_at,
    )


def instrument_out(i: Instrument) -> s.InstrumentOut:
    rule = KIND_RULES[Kind(i.kind)]
    return s.InstrumentOut(
        id=i.id or 0,
        code=i.code,
        kind=i.kind,
        label_zh=rule.label_zh,
        display_unit=rule.display_unit,
        scale=rule.scale,
        scheme=i.scheme,
        vintage=i.vintage,
        project_id=i.project_id,
        region=i.region,
        pollutant=i.pollutant,
        technology=i.technology,
        production_month=i.production_month,
        generator=i.generator,
        tradable=i.tradable,
        valid_until=i.valid_until,
    )
