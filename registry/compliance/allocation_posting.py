"""Posting allocation tables through the ledger when their calendar event comes (the `allocation` job, or the
approval itself when the date has passed): each line under its own request key, exactly once; a true-up issues or
claws back the difference to the pre-allocation, and earlier shortfalls are deducted from a new allocation first.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.db import UnitOfWork
from core.errors import AppError, Conflict
from core.events import emit
from registry.compliance._common import SYSTEM_ACTOR, calendar_of, dump_json
from registry.compliance.context import ComplianceContext
from registry.compliance.models import (
    AllocationDeduction,
    AllocationLine,
    AllocationTable,
    CompliancePeriod,
    ComplianceScheme,
)
from registry.compliance.queries import allocation_account, ensure_obligation, load_period_by_code
from registry.domain import allocation as alloc
from registry.domain import calendar as cal
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import RegistryAccount, RegistryTransaction

# Which calendar event a table of each kind waits for (the first one the template has).
TABLE_EVENTS = {
    "pre_allocation": (cal.EventKind.PRE_ALLOCATION, cal.EventKind.ALLOCATION),
    "allocation": (cal.EventKind.ALLOCATION,),
    "true_up": (cal.EventKind.TRUE_UP, cal.EventKind.ALLOCATION),
}


def table_due(scheme: ComplianceScheme, period: CompliancePeriod, table: AllocationTable, now: dt.datetime) -> bool:
    calendar = calendar_of(scheme, period)
    kinds = {e.kind for e in calendar.events}
    for kind in TABLE_EVENTS[table.kind]:
        if kind in kinds:
            return calendar.event(kind).fires_at <= now
    return True


async def post_due_allocations(ctx: ComplianceContext, period_code: str, event: str) -> dict[str, Any]:
    """The `allocation` job: post every approved table of the period whose calendar event has come."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        period, scheme = await load_period_by_code(ses, period_code)
        now = ctx.clock.now()
        tables = (
            (
                await ses.execute(
                    select(AllocationTable)
                    .where(AllocationTable.period_id == period.id, AllocationTable.status == "approved")
                    .order_by(AllocationTable.id)
                )
            )
            .scalars()
            .all()
        )
        posted = lines = 0
        for table in tables:
            if table_due(scheme, period, table, now):
                lines += await post_table(ctx, uow, table, period, scheme, now, SYSTEM_ACTOR)
                posted += 1
        return {"period": period_code, "event": event, "tables_posted": posted, "lines_posted": lines}

    return await ctx.db.run(work)


async def post_table(
    ctx: ComplianceContext,
    uow: UnitOfWork,
    table: AllocationTable,
    period: CompliancePeriod,
    scheme: ComplianceScheme,
    now: dt.datetime,
    actor: str,
) -> int:
    """Post a table's lines through the ledger, each under its own unique request key (exactly once)."""
    ses = uow.session
    inst = await ctx.registry._instrument(ses, table.instrument_id)
    source = await allocation_account(ses, table.organisation_id)
    pollutant = inst.pollutant or ""
    lines = (
        (
            await ses.execute(
                select(AllocationLine).where(AllocationLine.table_id == table.id).order_by(AllocationLine.id)
            )
        )
        .scalars()
        .all()
    )
    count = 0
    for line in lines:
        if line.transaction_id is not None:
            continue
        dest = await ses.get(RegistryAccount, line.account_id)
        assert dest is not None
        if line.method == "true_up":
            pre = await _pre_allocated(ses, period.id or 0, line.enterprise_id, inst.id or 0)
            t = alloc.true_up(line.quantity, pre)
            line.direction, line.delta = t.direction.value, t.quantity
            inputs = json.loads(line.inputs)
            inputs.update({"pre_allocated": pre, "delta": t.delta, "direction": t.direction.value})
            line.inputs = dump_json(inputs)
        else:
            line.direction, line.delta = "issue", line.quantity
        await ensure_obligation(ses, period, line.enterprise_id, pollutant, now)
        if line.direction == "issue" and line.delta > 0:
            line.deducted = await _apply_deductions(ses, scheme.id or 0, line.enterprise_id, pollutant, line.delta)
            quantity, code, frm, to = line.delta - line.deducted, "allocation", source, dest
        elif line.direction == "reverse" and line.delta > 0:
            la = await ctx.registry.ledger_account(ses, dest, inst)
            available = la.credits_posted - la.debits_posted - la.debits_pending
            quantity, code, frm, to = min(available, line.delta), "allocation_reversal", dest, source
            owed = line.delta - quantity
            if owed > 0:
                # What cannot be clawed back now is owed and deducted from the next allocation.
                await _owe(ses, scheme.id or 0, period.id or 0, line.enterprise_id, pollutant, owed, now)
        else:
            quantity = 0
        if quantity > 0:
            if code == "allocation":
                failures = _status_failures(dest)
                if failures:
                    raise AppError(failures[0], f"Account {dest.id} cannot receive units.", field="account_id")
            tx = await ctx.registry.record_and_move(
                ses,
                RegistryTransaction(
                    code=code,
                    instrument_id=inst.id or 0,
                    from_account_id=frm.id,
                    to_account_id=to.id,
                    quantity=quantity,
                    initiated_by=table.uploaded_by,
                    initiator_organisation_id=table.organisation_id,
                    approved_by=table.approved_by,
                    request_key=f"compliance:alloc:{line.id}",
                    period=period.code,
                    details=dump_json(
                        {"allocation_table": table.id, "enterprise_id": line.enterprise_id, "method": line.method}
                    ),
                    created_at=now,
                ),
                inst,
                frm,
                to,
                now,
            )
            line.transaction_id = tx.id
            if code == "allocation":
                emit(
                    ses,
                    "allocation.posted",
                    {
                        "transaction_id": tx.id,
                        "period_id": period.id,
                        "enterprise_id": line.enterprise_id,
                        "instrument_code": inst.code,
                        "quantity": figures.quantity_plain(quantity, KIND_RULES[Kind(inst.kind)].scale),
                        "to_account_id": dest.id,
                        "stage": line.method,
                    },
                    to=(dest.organisation_id,),
                    subject=f"transaction:{tx.id}",
                )
        line.posted = quantity
        uow.audit(
            actor,
            "compliance.allocation.post",
            "compliance_allocation_line",
            str(line.id),
            {
                "table": table.id,
                "enterprise_id": line.enterprise_id,
                "direction": line.direction,
                "delta": line.delta,
                "deducted": line.deducted,
                "posted": quantity,
            },
        )
        count += 1
    table.status = "posted"
    table.posted_at = now
    await ses.flush()
    return count


async def _owe(
    ses: AsyncSession,
    scheme_id: int,
    period_id: int,
    enterprise_id: int,
    pollutant: str,
    owed: int,
    now: dt.datetime,
) -> None:
    row = (
        await ses.execute(
            select(AllocationDeduction).where(
                AllocationDeduction.source_period_id == period_id,
                AllocationDeduction.enterprise_id == enterprise_id,
                AllocationDeduction.pollutant == pollutant,
                AllocationDeduction.reason == "true_up",
            )
        )
    ).scalar_one_or_none()
    if row is None:
        ses.add(
            AllocationDeduction(
                scheme_id=scheme_id,
                source_period_id=period_id,
                enterprise_id=enterprise_id,
                pollutant=pollutant,
                reason="true_up",
                shortfall_quantity=owed,
                quantity=owed,
                created_at=now,
            )
        )
    else:
        row.shortfall_quantity += owed
        row.quantity += owed
    await ses.flush()


async def _pre_allocated(ses: AsyncSession, period_id: int, enterprise_id: int, instrument_id: int) -> int:
    total = (
        await ses.execute(
            select(func.coalesce(func.sum(AllocationLine.quantity), 0))
            .join(AllocationTable, AllocationTable.id == AllocationLine.table_id)
            .where(
                AllocationTable.period_id == period_id,
                AllocationTable.kind == "pre_allocation",
                AllocationTable.status == "posted",
                AllocationLine.enterprise_id == enterprise_id,
            )
        )
    ).scalar_one()
    return int(total)


async def _apply_deductions(
    ses: AsyncSession, scheme_id: int, enterprise_id: int, pollutant: str, allocation: int
) -> int:
    """Deduct earlier shortfalls of this scheme from an allocation, oldest first (`deduct_from_allocation`)."""
    rows = (
        (
            await ses.execute(
                select(AllocationDeduction)
                .where(
                    AllocationDeduction.scheme_id == scheme_id,
                    AllocationDeduction.enterprise_id == enterprise_id,
                    AllocationDeduction.pollutant == pollutant,
                    AllocationDeduction.applied < AllocationDeduction.quantity,
                )
                .order_by(AllocationDeduction.id)
            )
        )
        .scalars()
        .all()
    )
    left = allocation
    deducted = 0
    for row in rows:
        d = alloc.deduct_from_allocation(left, row.quantity - row.applied)
        if d.deducted == 0:
            break
        # Conditional: a concurrent applier can never push `applied` past `quantity`.
        done = await ses.execute(
            update(AllocationDeduction)
            .where(
                AllocationDeduction.id == row.id,
                AllocationDeduction.applied + d.deducted <= AllocationDeduction.quantity,
            )
            .values(applied=AllocationDeduction.applied + d.deducted)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise Conflict("invalid-state", "A deduction was applied concurrently; retry.")
        deducted += d.deducted
        left = d.allocation_after
    return deducted


def _status_failures(acc_: RegistryAccount) -> list[str]:
    if acc_.status in ("closed", "closure_pending"):
        return ["account-closed"]
    if acc_.status == "blocked":
        return ["account-blocked"]
    return []
