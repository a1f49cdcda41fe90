"""Exports of a period's settled results: the CSV that spreadsheets open (formula-like cells kept as text), and
the snapshot that the compliance report PDF (`registry.compliance.pdf`) prints.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy import select

from core import documents, figures
from core.csvfile import cell
from core.db import UnitOfWork
from core.errors import Conflict
from core.identity import Identity
from core.models import Organisation
from registry.compliance._common import calendar_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import SettlementResultRow, SettlementRun
from registry.compliance.queries import load_period
from registry.compliance.results import domain_result, list_results
from registry.domain import calendar as cal
from registry.domain.settlement import totals_by
from registry.models import Enterprise


async def export_results_csv(ctx: ComplianceContext, who: Identity, period_id: int) -> str:
    page = await list_results(ctx, who, period_id, limit=10**9)
    out = io.StringIO()
    columns = [
        "obligation_id",
        "enterprise_id",
        "uscc",
        "enterprise_name",
        "city",
        "industry",
        "kind",
        "pollutant",
        "status",
        "timeliness",
        "report_late",
        "obligation",
        "surrendered_on_time",
        "surrendered_late",
        "forced_quantity",
        "surrendered",
        "excess",
        "shortfall_at_deadline",
        "shortfall",
        "fine_fen",
        "fine_yuan",
        "fine_formula",
        "next_allocation_deduction",
        "reserve_repayment",
        "fine_due_on",
        "citation",
    ]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    text_columns = {"enterprise_name", "fine_formula", "citation"}
    for item in page.items:
        row = [
            # A machine column: the plain decimal, not the thousands-separated figure the page shows.
            figures.yuan_plain(item.fine_fen) if c == "fine_yuan" else cell(getattr(item, c), text=c in text_columns)
            for c in columns
        ]
        writer.writerow(row)
    return out.getvalue()


async def report_data(
    ctx: ComplianceContext, who: Identity, period_id: int, *, issued_at: dt.datetime
) -> dict[str, Any]:
    """What the compliance report PDF prints, read in one snapshot (only for a settled period), and the report put
    on record (`core.documents`) in the same transaction: `code` is the verification code the PDF prints."""

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        period, scheme = await load_period(ses, period_id)
        if period.status != "settled":
            raise Conflict("invalid-state", f"Period {period.code} is {period.status}; settle it first.")
        run = (await ses.execute(select(SettlementRun).where(SettlementRun.period_id == period.id))).scalar_one()
        rows = (
            await ses.execute(
                select(SettlementResultRow, Enterprise)
                .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
                .where(SettlementResultRow.period_id == period.id)
                .order_by(SettlementResultRow.id)
            )
        ).all()
        authority = await ses.get(Organisation, scheme.authority_organisation_id)
        data: dict[str, Any] = {
            "period": period,
            "scheme": scheme,
            "run": run,
            "rows": rows,
            "deadline": calendar_of(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).business_date,
            "authority": authority.name if authority else "",
            "totals_city": totals_by([domain_result(r) for r, _ in rows], "city"),
            "totals_industry": totals_by([domain_result(r) for r, _ in rows], "industry"),
        }
        counts = [sum(1 for r, _ in rows if r.status == k) for k in ("A", "B", "C")]
        doc = await documents.issue(
            ses,
            kind="compliance_report",
            ref=f"period:{period.id}",
            title=f"{period.code} 履约情况报告",
            issued_by=data["authority"] or scheme.authority_role,
            record=report_record(data),
            facts={
                "履约期": f"{period.code}（{period.year} 年度）",
                "纳入企业": str(len(rows)),
                "足额清缴（A）/ 未足额（B）/ 未报告（C）": " / ".join(str(c) for c in counts),
                "罚款合计": figures.yuan(sum(r.fine_fen for r, _ in rows), unit=True),
            },
            issued_at=issued_at,
        )
        data["code"] = doc.code
        return data

    return await ctx.db.run(work)


def report_record(data: dict[str, Any]) -> dict[str, object]:
    """What the compliance report's verification code hashes: the period, its results and their totals, and when
    it was settled (the same settled period gives the same record, whenever it is downloaded)."""
    rows = data["rows"]
    run = data["run"]
    return {
        "period": data["period"].code,
        "results": len(rows),
        "status": [sum(1 for r, _ in rows if r.status == k) for k in ("A", "B", "C")],
        "shortfall": sum(r.shortfall for r, _ in rows),
        "fine_fen": sum(r.fine_fen for r, _ in rows),
        "settled_at": run.finished_at.isoformat() if run.finished_at else None,
    }
