"""Pages for the regulators: the compliance dashboard of a period (status counts, shortfalls and fines by city and
industry, with a chart), the approvals inbox (four-eyes: the second person approves), the settlement run beside its
dry run, and the enterprise search with each enterprise's accounts, holdings and compliance status."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from core.errors import AppError, InvalidInput
from core.identity import Role
from registry import enterprises, holdings, transfers
from registry import schemas as rs
from registry.compliance import periods, reports, results, verification
from registry.compliance import schemas as cs
from registry.compliance.api import run_settlement
from registry.compliance.context import ComplianceContext
from registry.context import RegistryContext
from web.app import lang_of, page
from web.auth import identity, page_for
from web.i18n import translate

AUTHORITIES = (Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.GEC_ISSUER)
READERS = (*AUTHORITIES, Role.VERIFIER, Role.AUDITOR)
ENTERPRISE_READERS = (*AUTHORITIES, Role.AUDITOR, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER)
PAGE_SIZE = 25


def rctx(request: Request[Any, Any, Any]) -> RegistryContext:
    return request.app.state.registry.ctx  # type: ignore[no-any-return]


def cctx(request: Request[Any, Any, Any]) -> ComplianceContext:
    return request.app.state.compliance.ctx  # type: ignore[no-any-return]


async def _dashboard(
    request: Request[Any, Any, Any], period_id: int | None, status_code: int = 200, **extra: Any
) -> Template:
    who = identity(request)
    all_periods = await periods.list_periods(cctx(request), who)
    chosen = next((p for p in all_periods if p.id == period_id), all_periods[-1] if all_periods else None)
    summary = None
    chart = None
    if chosen is not None:
        summary = await results.list_results(cctx(request), who, chosen.id, limit=200, offset=0)
        lang = lang_of(request)
        cities = summary.totals_by_city
        chart = {
            "type": "bar",
            "data": {
                "labels": [c.key for c in cities],
                "datasets": [
                    {"label": translate("comp.compliant", lang), "data": [c.compliant for c in cities],
                     "backgroundColor": "#1f7a4d"},
                    {"label": translate("comp.short", lang), "data": [c.shortfall_count for c in cities],
                     "backgroundColor": "#b3261e"},
                    {"label": translate("comp.not_reported", lang), "data": [c.not_reported for c in cities],
                     "backgroundColor": "#f2c14e"},
                ],
            },
            "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}},
        }  # fmt: skip
    inbox = [] if who.role not in AUTHORITIES else await holdings.awaiting_approval(rctx(request), who)
    to_verify = []
    if chosen is not None and who.role in (Role.VERIFIER, *AUTHORITIES):
        to_verify = [r for r in await reports.list_reports(cctx(request), who, chosen.id) if r.status == "submitted"]
    counts: dict[str, int] = {}
    for row in summary.items if summary else []:
        counts[row.status] = counts.get(row.status, 0) + 1
    return page(
        request,
        "compliance/index.html",
        status_code=status_code,
        periods=all_periods,
        period=chosen,
        summary=summary,
        counts=counts,
        chart=chart,
        inbox=inbox,
        to_verify=to_verify,
        me=who,
        **extra,
    )


@get("/compliance", guards=[page_for(*READERS)], include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], period: FromQuery[int | None] = None) -> Template:
    return await _dashboard(request, period)


@post("/compliance/approvals/{tx_id:int}", guards=[page_for(*AUTHORITIES)], include_in_schema=False, status_code=303)
async def decide(request: Request[Any, Any, Any], tx_id: int, data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    decision = data.get("decision")
    try:
        if decision not in ("approve", "reject"):
            raise InvalidInput("decision", "Approve or reject.")
        await transfers.approve_transfer(
            rctx(request), identity(request), tx_id, rs.Decision(decision=decision, reason=data.get("reason") or "")
        )
    except AppError as exc:
        return await _dashboard(request, None, status_code=exc.status, refusal=exc)
    return Redirect("/compliance#inbox", status_code=303)


@post("/compliance/periods/{period_id:int}/settlement", guards=[page_for(Role.REGULATOR, Role.ENERGY_AUTHORITY)],
      include_in_schema=False, status_code=200)  # fmt: skip
async def settle(request: Request[Any, Any, Any], period_id: int, data: URLEncodedBody[dict[str, str]]) -> Template:
    dry = data.get("mode") != "run"
    try:
        out = await run_settlement(request.app.state, identity(request), period_id, dry_run=dry)
    except AppError as exc:
        return await _dashboard(request, period_id, status_code=exc.status, refusal=exc)
    return await _dashboard(request, period_id, settlement=out)


@post("/compliance/reports/{report_id:int}/verification", guards=[page_for(Role.VERIFIER)], include_in_schema=False,
      status_code=303)  # fmt: skip
async def verify(
    request: Request[Any, Any, Any], report_id: int, data: URLEncodedBody[dict[str, str]]
) -> Response[Any]:
    version = data.get("version") or ""
    period = data.get("period_id") or ""
    try:
        if not version.isdigit():
            raise InvalidInput("version", "The version you read is missing.")
        await verification.verify_report(
            cctx(request), identity(request), report_id, cs.VerifyReport(decision="verify", version=int(version))
        )
    except AppError as exc:
        return await _dashboard(request, int(period) if period.isdigit() else None, status_code=exc.status,
                                refusal=exc)  # fmt: skip
    return Redirect(f"/compliance?period={period}#verify" if period.isdigit() else "/compliance", status_code=303)


@get("/enterprises", guards=[page_for(*ENTERPRISE_READERS)], include_in_schema=False)
async def search(
    request: Request[Any, Any, Any],
    name: FromQuery[str | None] = None,
    uscc: FromQuery[str | None] = None,
    city: FromQuery[str | None] = None,
    industry: FromQuery[str | None] = None,
    offset: FromQuery[int] = 0,
) -> Template:
    filters = {k: (v or "").strip()[:100] or None for k, v in
               {"name": name, "uscc": uscc, "city": city, "industry": industry}.items()}  # fmt: skip
    found = await enterprises.list_enterprises(
        rctx(request), identity(request), **filters, sort="name", limit=PAGE_SIZE, offset=max(0, offset)
    )
    kept = {k: v for k, v in filters.items() if v}
    next_url = None if found.next_offset is None else "/enterprises?" + urlencode({**kept, "offset": found.next_offset})
    return page(request, "enterprises/index.html", found=found.items, filters=filters, next_url=next_url)


@get("/enterprises/{enterprise_id:int}", guards=[page_for(*ENTERPRISE_READERS)], include_in_schema=False)
async def enterprise_page(request: Request[Any, Any, Any], enterprise_id: int) -> Template:
    who = identity(request)
    ent = await enterprises.get_enterprise(rctx(request), who, enterprise_id)
    accounts = await enterprises.enterprise_accounts(rctx(request), who, enterprise_id)
    held = [(a, await holdings.list_holdings(rctx(request), who, a.id)) for a in accounts]
    status = None
    if who.role is not Role.FINANCE_REVIEWER and who.role is not Role.FINANCE_APPROVER:
        status = await results.get_compliance_status(cctx(request), who, enterprise_id)
    return page(request, "enterprises/detail.html", enterprise=ent, accounts=held, status=status)


ROUTES: list[Any] = [dashboard, decide, settle, verify, search, enterprise_page]
