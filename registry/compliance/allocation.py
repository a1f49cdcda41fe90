"""Allocation tables: an authority uploads an allocation, pre-allocation or true-up table (a fixed quantity, a
benchmark × output × corrections, or a share of last year's verified emissions per line); a second person of the
same authority approves or rejects it (four-eyes), and an approved table whose date has come is posted at once.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.db import UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.identity import Identity
from core.quantity import parse_amount, parse_quantity
from core.text import clean_text
from registry.compliance import schemas as s
from registry.compliance._common import ALLOCATION_KIND, DECIMAL, dump_json, param
from registry.compliance.allocation_posting import post_table, table_due
from registry.compliance.context import ComplianceContext
from registry.compliance.models import AllocationLine, AllocationTable, CompliancePeriod, ComplianceScheme, Obligation
from registry.compliance.queries import check_instrument, holding_account, load_period, require_authority, require_open
from registry.domain import allocation as alloc
from registry.domain.exact import fraction_text
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Enterprise, Instrument


async def upload_allocation_table(
    ctx: ComplianceContext, who: Identity, period_id: int, req: s.UploadAllocationTable, request_key: str | None
) -> s.AllocationTableOut:
    note = clean_text(req.note, "note", max_len=1000, required=False)
    if not 1 <= len(req.lines) <= 10_000:
        raise InvalidInput("lines", "Give 1 to 10,000 lines.")

    async def work(uow: UnitOfWork) -> s.AllocationTableOut:
        ses = uow.session
        if request_key is not None:
            prior = (
                await ses.execute(select(AllocationTable).where(AllocationTable.request_key == request_key))
            ).scalar_one_or_none()
            if prior is not None:
                return await _table_out(ses, prior)
        period, scheme = await load_period(ses, period_id)
        require_authority(who, scheme)
        require_open(period)
        if scheme.kind not in ALLOCATION_KIND:
            raise InvalidInput("kind", "Green-power quotas are set with registerObligations, not allocated.")
        inst = await ctx.registry._instrument(ses, req.instrument_id)
        check_instrument(scheme, inst)
        kind = Kind(inst.kind)
        scale = KIND_RULES[kind].scale
        errors: list[dict[str, Any]] = []
        seen: set[int] = set()
        lines: list[AllocationLine] = []
        ents = {
            e.id: e
            for e in (
                await ses.execute(
                    select(Enterprise).where(Enterprise.id.in_([x.enterprise_id for x in req.lines]))  # type: ignore[attr-defined]
                )
            ).scalars()
        }
        for i, line in enumerate(req.lines):
            f = f"lines[{i}]"
            ent = ents.get(line.enterprise_id)
            if ent is None:
                errors.append({"field": f"{f}.enterprise_id", "code": "not-found", "detail": "No such enterprise."})
                continue
            if line.enterprise_id in seen:
                errors.append(
                    {
                        "field": f"{f}.enterprise_id",
                        "code": "duplicate",
                        "detail": "An enterprise appears once per table.",
                    }
                )
                continue
            seen.add(line.enterprise_id)
            account = await holding_account(ses, ent, line.account_id)
            if account is None:
                errors.append(
                    {
                        "field": f"{f}.account_id",
                        "code": "unknown-account",
                        "detail": "Name a holding account of this enterprise (or open one first).",
                    }
                )
                continue
            try:
                method, quantity, inputs = await _line_quantity(
                    ctx, ses, req.kind, period, scheme, inst, line, scale, f
                )
            except AppError as exc:
                errors.append({"field": exc.field or f, "code": exc.problem.slug, "detail": exc.detail})
                continue
            lines.append(
                AllocationLine(
                    table_id=0,
                    enterprise_id=ent.id or 0,
                    account_id=account.id or 0,
                    method=method,
                    quantity=quantity,
                    inputs=dump_json(inputs),
                )
            )
        if errors:
            raise AppError(
                "invalid-input",
                f"{len(errors)} problem(s) in the table; nothing was saved.",
                field=errors[0]["field"],
                extra={"errors": errors},
            )
        table = AllocationTable(
            period_id=period.id or 0,
            kind=req.kind,
            status="awaiting_approval",
            instrument_id=inst.id or 0,
            uploaded_by=who.principal_id,
            uploaded_role=who.role.value,
            organisation_id=who.organisation_id,
            request_key=request_key,
            note=note,
            created_at=ctx.clock.now(),
        )
        ses.add(table)
        await ses.flush()
        for row in lines:
            row.table_id = table.id or 0
            ses.add(row)
        await ses.flush()
        uow.audit(
            who.actor,
            "compliance.allocation_table.upload",
            "compliance_allocation_table",
            str(table.id),
            {
                "period": period.code,
                "kind": req.kind,
                "instrument": inst.code,
                "lines": len(lines),
                "total": sum(x.quantity for x in lines),
            },
        )
        return await _table_out(ses, table)

    return await ctx.db.run(work)


async def _line_quantity(
    ctx: ComplianceContext,
    ses: AsyncSession,
    table_kind: str,
    period: CompliancePeriod,
    scheme: ComplianceScheme,
    inst: Instrument,
    line: s.AllocationLineIn,
    scale: int,
    f: str,
) -> tuple[str, int, dict[str, Any]]:
    """The allocation the rule gives one line: a fixed quantity, `benchmark × output × correction`, or 70 %
    of the previous year's verified emissions; the true-up's difference is taken when it is posted."""
    if table_kind == "pre_allocation":
        if line.quantity is not None or line.benchmark_lines is not None:
            raise InvalidInput(f"{f}.quantity", "A pre-allocation is computed from previous verified emissions.")
        source = "given"
        if line.previous_verified is not None:
            previous = parse_quantity(line.previous_verified, scale=scale, field=f"{f}.previous_verified")
        else:
            prev = (
                await ses.execute(
                    select(Obligation.verified_quantity)
                    .join(CompliancePeriod, CompliancePeriod.id == Obligation.period_id)
                    .where(
                        CompliancePeriod.scheme_id == scheme.id,
                        CompliancePeriod.year == period.year - 1,
                        Obligation.enterprise_id == line.enterprise_id,
                        Obligation.pollutant == (inst.pollutant or ""),
                    )
                )
            ).scalar_one_or_none()
            if prev is None:
                raise InvalidInput(
                    f"{f}.previous_verified",
                    f"No verified figure for {period.year - 1} in this scheme; give previous_verified.",
                )
            previous, source = prev, f"verified {period.year - 1}"
        ratio = int(param(ctx, "pre_allocation_ratio_bps", dt.date(period.year + 1, 1, 1)))
        quantity = alloc.pre_allocation(previous, ratio)
        return (
            "pre_allocation",
            quantity,
            {
                "previous_verified": previous,
                "source": source,
                "ratio_bps": ratio,
                "ratio": figures.percent(ratio),
                "rule": "pre-allocation = previous verified × ratio, rounded half up",
            },
        )
    if line.previous_verified is not None:
        raise InvalidInput(f"{f}.previous_verified", "Only pre-allocation lines take previous_verified.")
    if (line.quantity is None) == (line.benchmark_lines is None):
        raise InvalidInput(f"{f}.quantity", "Give either quantity or benchmark_lines.")
    method = "true_up" if table_kind == "true_up" else "fixed"
    if line.quantity is not None:
        # A true-up to zero is a real decision (e.g. a plant that closed); a plain allocation of zero is not.
        quantity = parse_amount(line.quantity, scale=scale, field=f"{f}.quantity", allow_zero=method == "true_up")
        return method, quantity, {"final_allocation": quantity} if method == "true_up" else {}
    bl = line.benchmark_lines or []
    if not 1 <= len(bl) <= 20:
        raise InvalidInput(f"{f}.benchmark_lines", "Give 1 to 20 benchmark lines.")
    parsed = [
        alloc.BenchmarkLine(
            clean_text(b.label, f"{f}.benchmark_lines[{j}].label", max_len=100),
            _decimal(b.benchmark, f"{f}.benchmark_lines[{j}].benchmark"),
            _decimal(b.output, f"{f}.benchmark_lines[{j}].output"),
            tuple(_decimal(c, f"{f}.benchmark_lines[{j}].corrections") for c in b.corrections),
        )
        for j, b in enumerate(bl)
    ]
    try:
        result = alloc.intensity_allocation(parsed)
    except ValueError as exc:
        raise InvalidInput(f"{f}.benchmark_lines", str(exc)) from exc
    inputs = {
        "rule": "Σ benchmark × output × Π corrections, rounded half up once",
        "lines": [
            {
                "label": b.label,
                "benchmark": b.benchmark,
                "output": b.output,
                "corrections": b.corrections,
                "exact": x.text,
            }
            for b, x in zip(bl, result.lines, strict=True)
        ],
        "exact_total": fraction_text(result.exact_total, 6),
    }
    return ("true_up" if table_kind == "true_up" else "benchmark"), result.quantity, inputs


async def approve_allocation_table(
    ctx: ComplianceContext, who: Identity, table_id: int, req: s.Decision
) -> s.AllocationTableOut:
    reason = clean_text(req.reason, "reason", max_len=500, required=req.decision == "reject")

    async def work(uow: UnitOfWork) -> s.AllocationTableOut:
        ses = uow.session
        table = await ses.get(AllocationTable, table_id)
        if table is None or table.organisation_id != who.organisation_id:
            raise NotFound("allocation table")
        if who.role.value != table.uploaded_role:
            raise Forbidden(f"Only a {table.uploaded_role} of the uploading authority decides this table.")
        if table.status != "awaiting_approval":
            if table.approved_by == who.principal_id:
                return await _table_out(ses, table)
            raise Conflict("invalid-state", f"Table {table.id} is {table.status}; it was decided already.")
        if table.uploaded_by == who.principal_id:
            raise AppError("four-eyes-required", "The uploader may not approve its own table; ask a second person.")
        period, scheme = await load_period(ses, table.period_id)
        now = ctx.clock.now()
        table.approved_by = who.principal_id
        table.decided_at = now
        if req.decision == "reject":
            table.status = "rejected"
            table.reason = reason
        else:
            require_open(period)
            table.status = "approved"
            if table_due(scheme, period, table, now):
                await post_table(ctx, uow, table, period, scheme, now, who.actor)
        await ses.flush()
        uow.audit(
            who.actor,
            f"compliance.allocation_table.{req.decision}",
            "compliance_allocation_table",
            str(table.id),
            {"status": table.status},
        )
        return await _table_out(ses, table)

    return await ctx.db.run(work)


async def get_allocation_table(ctx: ComplianceContext, who: Identity, table_id: int) -> s.AllocationTableOut:
    async def work(uow: UnitOfWork) -> s.AllocationTableOut:
        table = await uow.session.get(AllocationTable, table_id)
        if table is None:
            raise NotFound("allocation table")
        return await _table_out(uow.session, table)

    return await ctx.db.read(work)


async def _table_out(ses: AsyncSession, table: AllocationTable) -> s.AllocationTableOut:
    lines = (
        (
            await ses.execute(
                select(AllocationLine).where(AllocationLine.table_id == table.id).order_by(AllocationLine.id)
            )
        )
        .scalars()
        .all()
    )
    return s.AllocationTableOut(
        id=table.id or 0,
        period_id=table.period_id,
        kind=table.kind,
        status=table.status,
        instrument_id=table.instrument_id,
        uploaded_by=table.uploaded_by,
        approved_by=table.approved_by,
        note=table.note,
        reason=table.reason,
        total_quantity=sum(x.quantity for x in lines),
        created_at=table.created_at,
        decided_at=table.decided_at,
        posted_at=table.posted_at,
        lines=[
            s.AllocationLineOut(
                enterprise_id=x.enterprise_id,
                account_id=x.account_id,
                method=x.method,
                quantity=x.quantity,
                direction=x.direction,
                delta=x.delta,
                deducted=x.deducted,
                posted=x.posted,
                inputs=json.loads(x.inputs),
                transaction_id=x.transaction_id,
            )
            for x in lines
        ],
    )


def _decimal(text: object, field: str) -> Decimal:
    if not isinstance(text, str) or not DECIMAL.fullmatch(text):
        raise InvalidInput(field, 'Give an exact decimal as a string such as "0.8177" (no exponent or spaces).')
    return Decimal(text)
