"""Verification: the verifier confirms (or corrects) the latest version of a report; the verified figure becomes
the obligation of each pollutant (or of the whole report), and a pollutant no longer reported is verified as zero.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from core.db import UnitOfWork
from core.errors import AppError, Conflict, InvalidInput, NotFound
from core.identity import Identity
from core.text import clean_text
from registry.compliance import schemas as s
from registry.compliance.context import ComplianceContext
from registry.compliance.figures import compute, obligation_figures
from registry.compliance.models import ComplianceReport, Obligation, ReportVersion
from registry.compliance.queries import ensure_obligation, load_period, require_open
from registry.compliance.reports import line_dict, new_version, report_out


async def verify_report(ctx: ComplianceContext, who: Identity, report_id: int, req: s.VerifyReport) -> s.ReportOut:
    note = clean_text(req.note, "note", max_len=1000, required=False)

    async def work(uow: UnitOfWork) -> s.ReportOut:
        ses = uow.session
        report = await ses.get(ComplianceReport, report_id)
        if report is None:
            raise NotFound("report")
        period, scheme = await load_period(ses, report.period_id)
        require_open(period)
        if req.version != report.current_version:
            raise Conflict(
                "invalid-state",
                f"Version {report.current_version} is the latest; verify that one.",
                field="version",
            )
        now = ctx.clock.now()
        if req.decision == "correct":
            if not req.lines:
                raise InvalidInput("lines", "A correction gives the corrected lines.")
            computed = compute(ctx, scheme.kind, period.year, [line_dict(x) for x in req.lines])
            if isinstance(computed, list):
                raise AppError(
                    "report-rows-invalid",
                    f"{len(computed)} problem(s) in the corrected lines.",
                    field="lines",
                    extra={"errors": computed},
                )
            version = await new_version(ses, report, who, "verifier", computed, note or "核查修正", now)
        else:
            if req.lines:
                raise InvalidInput("lines", "Verify takes no lines; use decision 'correct' to change figures.")
            version = (
                await ses.execute(
                    select(ReportVersion).where(
                        ReportVersion.report_id == report.id, ReportVersion.version == report.current_version
                    )
                )
            ).scalar_one()
        report.status = "verified"
        report.verified_version = version.version
        report.verified_at = now
        report.verified_by = who.principal_id
        totals = json.loads(version.totals)
        figures = obligation_figures(scheme.kind, totals)
        existing = {
            o.pollutant: o
            for o in (
                await ses.execute(
                    select(Obligation).where(
                        Obligation.period_id == period.id, Obligation.enterprise_id == report.enterprise_id
                    )
                )
            ).scalars()
        }
        for pollutant, quantity in figures.items():
            ob = existing.get(pollutant) or await ensure_obligation(ses, period, report.enterprise_id, pollutant, now)
            ob.verified_quantity = quantity
            ob.report_version_id = version.id
            ob.updated_at = now
        # A pollutant the verified version no longer reports was verified as zero.
        for pollutant, ob in existing.items():
            if pollutant not in figures:
                ob.verified_quantity = 0
                ob.report_version_id = version.id
                ob.updated_at = now
        uow.audit(
            who.actor,
            f"compliance.report.{req.decision}",
            "compliance_report",
            str(report.id),
            {"version": version.version, "figures": figures, "enterprise_id": report.enterprise_id},
        )
        return await report_out(ses, report)

    return await ctx.db.run(work)
