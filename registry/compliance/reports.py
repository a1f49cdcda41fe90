"""Annual reports: an enterprise (or its authority) submits report lines as JSON or imports a CSV or Excel file of
one or many enterprises, all rows or none; each submission is a new version whose figure the national method
computes, and it names the enterprise's obligations in the period.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.identity import Identity, Role
from core.text import clean_text
from registry import reports_import
from registry.compliance import schemas as s
from registry.compliance._common import calendar_of, carbon_factors_of, dump_json, pollutants_of
from registry.compliance.context import ComplianceContext
from registry.compliance.figures import compute, obligation_figures
from registry.compliance.models import CompliancePeriod, ComplianceReport, ComplianceScheme, ReportVersion
from registry.compliance.queries import (
    ensure_obligation,
    load_period,
    may_see_enterprise,
    own_enterprise,
    reporting_enterprise,
    require_authority,
    require_open,
    require_reporting,
)
from registry.domain import calendar as cal
from registry.models import Enterprise


async def submit_report(ctx: ComplianceContext, who: Identity, period_id: int, req: s.SubmitReport) -> s.ReportOut:
    note = clean_text(req.note, "note", max_len=1000, required=False)
    if not 1 <= len(req.lines) <= reports_import.MAX_ROWS:
        raise InvalidInput("lines", f"Give 1 to {reports_import.MAX_ROWS} lines.")

    async def work(uow: UnitOfWork) -> s.ReportOut:
        ses = uow.session
        period, scheme = await load_period(ses, period_id)
        require_reporting(scheme)
        ent = await reporting_enterprise(ses, who, scheme, req.enterprise_id)
        computed = compute(ctx, scheme.kind, period.year, [line_dict(x) for x in req.lines])
        if isinstance(computed, list):
            raise AppError(
                "report-rows-invalid",
                f"{len(computed)} problem(s) in the report lines; nothing was "
                "saved. Fix every line listed in `errors`.",
                field="lines",
                extra={"errors": computed},
            )
        require_open(period)
        report = await _add_version(ctx, uow, who, scheme, period, ent, computed, "api", note)
        return await report_out(ses, report)

    return await ctx.db.run(work)


async def upload_reports(
    ctx: ComplianceContext, who: Identity, period_id: int, data: bytes, filename: str
) -> s.UploadOut:
    """Import a CSV or Excel file of report rows, one or many enterprises, all or nothing: every bad row is
    reported with its spreadsheet row number and nothing is saved if any row is bad."""

    async def load(uow: UnitOfWork) -> tuple[CompliancePeriod, ComplianceScheme, Enterprise | None]:
        period, scheme = await load_period(uow.session, period_id)
        require_reporting(scheme)
        own = None
        if who.role is Role.EMITTER:
            own = await own_enterprise(uow.session, who)
        else:
            require_authority(who, scheme)
        return period, scheme, own

    period, scheme, own = await ctx.db.read(load)
    kind: reports_import.ReportKind = scheme.kind  # type: ignore[assignment]
    rules = (
        reports_import.carbon_rules(carbon_factors_of(ctx, period.year))
        if kind == "carbon"
        else reports_import.energy_rules()
        if kind == "energy"
        else reports_import.discharge_rules(pollutants_of(ctx, period.year))
    )
    parsed = reports_import.parse_report(
        data,
        filename=filename,
        kind=kind,
        rules=rules,
        expected_uscc=own.uscc if own is not None else None,
        expected_year=period.year,
    )
    if isinstance(parsed, reports_import.ReportRejected):
        _raise_rows(parsed.errors)
    assert isinstance(parsed, reports_import.ParsedReport)
    source = "xlsx" if filename.lower().endswith((".xlsx", ".xlsm")) or data.startswith(b"PK\x03\x04") else "csv"
    by_uscc: dict[str, list[reports_import.ReportRow]] = defaultdict(list)
    for row in parsed.rows:
        by_uscc[row.uscc].append(row)

    async def work(uow: UnitOfWork) -> s.UploadOut:
        ses = uow.session
        period_now, scheme_now = await load_period(ses, period_id)
        ents = {
            e.uscc: e
            for e in (await ses.execute(select(Enterprise).where(Enterprise.uscc.in_(list(by_uscc))))).scalars()  # type: ignore[attr-defined]
        }
        errors: list[reports_import.RowError] = []
        computed_by: dict[str, dict[str, Any]] = {}
        for code, rows in by_uscc.items():
            if code not in ents:
                errors += [
                    reports_import.RowError(
                        r.row, "uscc", "unknown-enterprise", "no enterprise with this code is registered", code
                    )
                    for r in rows
                ]
                continue
            lines = [_row_dict(kind, r) for r in rows]
            result = compute(ctx, kind, period.year, lines)
            if isinstance(result, list):
                for e in result:
                    r = rows[e["line"]]
                    errors.append(reports_import.RowError(r.row, e["field"].split(".")[-1], e["code"], e["detail"]))
                continue
            computed_by[code] = result
        if errors:
            _raise_rows(sorted(errors, key=lambda e: (e.row, e.column or "")))
        require_open(period_now)
        reports = []
        for code, result in computed_by.items():
            report = await _add_version(ctx, uow, who, scheme_now, period_now, ents[code], result, source, filename)
            reports.append(await report_out(ses, report))
        return s.UploadOut(imported_rows=len(parsed.rows), reports=reports)

    return await ctx.db.run(work)


async def get_report(ctx: ComplianceContext, who: Identity, report_id: int) -> s.ReportOut:
    async def work(uow: UnitOfWork) -> s.ReportOut:
        report = await uow.session.get(ComplianceReport, report_id)
        if report is None or not await may_see_enterprise(uow.session, who, report.enterprise_id):
            raise NotFound("report")
        return await report_out(uow.session, report)

    return await ctx.db.read(work)


async def list_reports(ctx: ComplianceContext, who: Identity, period_id: int) -> list[s.ReportOut]:
    async def work(uow: UnitOfWork) -> list[s.ReportOut]:
        ses = uow.session
        await load_period(ses, period_id)
        q = select(ComplianceReport).where(ComplianceReport.period_id == period_id)
        if who.role is Role.EMITTER:
            own = await own_enterprise(ses, who)
            q = q.where(ComplianceReport.enterprise_id == own.id)
        rows = (await ses.execute(q.order_by(ComplianceReport.id).limit(1000))).scalars().all()
        return [await report_out(ses, r) for r in rows]

    return await ctx.db.read(work)


async def _add_version(
    ctx: ComplianceContext,
    uow: UnitOfWork,
    who: Identity,
    scheme: ComplianceScheme,
    period: CompliancePeriod,
    ent: Enterprise,
    computed: dict[str, Any],
    source: str,
    note: str,
) -> ComplianceReport:
    ses = uow.session
    now = ctx.clock.now()
    report = (
        await ses.execute(
            select(ComplianceReport).where(
                ComplianceReport.period_id == period.id, ComplianceReport.enterprise_id == ent.id
            )
        )
    ).scalar_one_or_none()
    if report is None:
        calendar = calendar_of(scheme, period)
        kinds = {e.kind for e in calendar.events}
        late = cal.EventKind.REPORT_DUE in kinds and not calendar.event(cal.EventKind.REPORT_DUE).is_on_time(now)
        report = ComplianceReport(
            period_id=period.id or 0,
            enterprise_id=ent.id or 0,
            kind=scheme.kind,
            status="submitted",
            current_version=0,
            first_submitted_at=now,
            late=late,
        )
        ses.add(report)
        await ses.flush()
    version = await new_version(ses, report, who, source, computed, note, now)
    report.status = "submitted"
    pollutants = list(computed.get("kg", {})) if scheme.kind == "discharge" else [""]
    for p in pollutants:
        await ensure_obligation(ses, period, ent.id or 0, p, now)
    uow.audit(
        who.actor,
        "compliance.report.submit",
        "compliance_report",
        str(report.id),
        {
            "version": version.version,
            "source": source,
            "enterprise_id": ent.id,
            "figures": obligation_figures(scheme.kind, computed),
        },
    )
    return report


async def new_version(
    ses: AsyncSession,
    report: ComplianceReport,
    who: Identity,
    source: str,
    computed: dict[str, Any],
    note: str,
    now: dt.datetime,
) -> ReportVersion:
    report.current_version += 1
    totals = {k: v for k, v in computed.items() if k not in ("lines", "explanation")}
    version = ReportVersion(
        report_id=report.id or 0,
        version=report.current_version,
        source=source,
        lines=dump_json(computed["lines"]),
        totals=dump_json(totals),
        explanation=dump_json(computed["explanation"]),
        submitted_by=who.principal_id,
        submitted_role=who.role.value,
        note=note[:1000],
        created_at=now,
    )
    ses.add(version)
    await ses.flush()
    return version


async def report_out(ses: AsyncSession, report: ComplianceReport) -> s.ReportOut:
    versions = (
        (
            await ses.execute(
                select(ReportVersion).where(ReportVersion.report_id == report.id).order_by(ReportVersion.version)
            )
        )
        .scalars()
        .all()
    )
    verified = next((v for v in versions if v.version == report.verified_version), None)
    return s.ReportOut(
        id=report.id or 0,
        period_id=report.period_id,
        enterprise_id=report.enterprise_id,
        kind=report.kind,
        status=report.status,
        late=report.late,
        current_version=report.current_version,
        verified_version=report.verified_version,
        verified_figure=json.loads(verified.totals) if verified is not None else None,
        first_submitted_at=report.first_submitted_at,
        verified_at=report.verified_at,
        versions=[
            s.ReportVersionOut(
                version=v.version,
                source=v.source,
                lines=json.loads(v.lines),
                totals=json.loads(v.totals),
                explanation=json.loads(v.explanation),
                submitted_by=v.submitted_by,
                submitted_role=v.submitted_role,
                note=v.note,
                created_at=v.created_at,
            )
            for v in versions
        ],
    )


def line_dict(line: s.ReportLine) -> dict[str, Any]:
    out: dict[str, Any] = {"quantity": line.quantity, "unit": line.unit}
    for k in ("line_type", "item", "pollutant"):
        v = getattr(line, k)
        if v is not None:
            out[k] = v
    return out


def _row_dict(kind: str, r: reports_import.ReportRow) -> dict[str, Any]:
    out: dict[str, Any] = {"quantity": str(r.quantity), "unit": r.unit, "row": r.row}
    if kind == "carbon":
        out.update(line_type=r.line_type, item=r.item)
    elif kind == "energy":
        out["item"] = r.item
    else:
        out["pollutant"] = r.item
    return out


def _raise_rows(errors: Iterable[reports_import.RowError]) -> None:
    errors = list(errors)
    items: list[dict[str, Any]] = [
        {"row": e.row, "column": e.column, "code": e.code, "detail": e.message, "value": e.value} for e in errors
    ]
    rows = sorted({e.row for e in errors})
    raise AppError(
        "report-rows-invalid",
        f"{len(items)} problem(s) in row(s) {', '.join(map(str, rows[:30]))}{' …' if len(rows) > 30 else ''}; "
        "nothing was imported. Fix every row listed in `errors` and upload the file again.",
        field="file",
        extra={"errors": items},
    )
