"""Pages for a key emitter's staff: the enterprise's accounts with holdings and serial ranges, its transactions
(paginated), statement PDFs, obligations with their deadlines and the surrender form, report submission (a form of
lines or an Excel/CSV upload, every bad row shown), the eligibility self-check per programme, claim submission, and
consents for banks (grant, revoke, and every query a bank made under them). Each handler calls the service the
matching API operation calls, with the signed-in person's Identity; another enterprise's account answers 404."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from core import events
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput
from core.identity import Role
from core.quantity import parse_money_fen
from finance import claims as finance_claims
from finance import consents, green_credit
from finance import schemas as fs
from finance.context import FinanceContext
from incentives import engine, evaluations
from incentives import schemas as ins
from incentives.context import IncentivesContext
from registry import enterprises, holdings, surrenders
from registry import schemas as rs
from registry.compliance import obligations, periods, reports
from registry.compliance import schemas as cs
from registry.compliance.context import ComplianceContext
from registry.context import RegistryContext
from registry.pdf import render_statement
from web.app import page
from web.auth import identity, page_for

EMITTER = (Role.EMITTER,)
RECENT = 10  # transactions per account on the home page; the account's transaction pages go further
TX_PAGE = 25
EVENTS = 20  # the latest events on the home page; the API's listEvents pages through all of them
REPORT_ROWS = 5  # empty line rows of the report form
LINE_FIELDS = ("line_type", "item", "pollutant", "quantity", "unit")


def rctx(request: Request[Any, Any, Any]) -> RegistryContext:
    return request.app.state.registry.ctx  # type: ignore[no-any-return]


def cctx(request: Request[Any, Any, Any]) -> ComplianceContext:
    return request.app.state.compliance.ctx  # type: ignore[no-any-return]


def ictx(request: Request[Any, Any, Any]) -> IncentivesContext:
    return request.app.state.incentives.ctx  # type: ignore[no-any-return]


def fctx(request: Request[Any, Any, Any]) -> FinanceContext:
    return request.app.state.finance.ctx  # type: ignore[no-any-return]


async def _home(request: Request[Any, Any, Any], status_code: int = 200, **extra: Any) -> Template:
    who = identity(request)
    ent, accounts = await enterprises.own_enterprise(rctx(request), who)
    held = []
    for acc in accounts:
        rows = await holdings.list_holdings(rctx(request), who, acc.id)
        page_ = await holdings.list_account_transactions(rctx(request), who, acc.id, limit=RECENT, before_id=None)
        held.append((acc, rows, page_.items, page_.next_before_id))
    all_periods = await periods.list_periods(cctx(request), who)
    open_periods = [p for p in all_periods if p.status == "open"]
    owed = [] if ent is None else await obligations.enterprise_obligations(cctx(request), who, ent.id)
    my_consents = await consents.list_consents(fctx(request), who)
    banks = await consents.list_banks(fctx(request), who)
    queries = await green_credit.list_queries(fctx(request), who, 50)
    my_claims = (await finance_claims.list_claims(fctx(request), who, limit=50)).items

    async def latest(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = await events.inbox(uow.session, who.organisation_id, limit=EVENTS, newest_first=True)
        return [{**events.event_out(r), "occurred_at": r.occurred_at} for r in rows]

    my_events = await request.app.state.db.read(latest)
    return page(
        request,
        "enterprise/index.html",
        status_code=status_code,
        enterprise=ent,
        accounts=held,
        obligations=owed,
        consents=my_consents,
        banks=banks,
        queries=queries,
        periods=open_periods,
        claims=my_claims,
        events=my_events,
        form_key=uuid.uuid4().hex,  # the surrender form's idempotency key: a resubmitted form moves nothing twice
        report_rows=REPORT_ROWS,
        **extra,
    )


@get("/enterprise", guards=[page_for(*EMITTER)], include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Template:
    return await _home(request)


@get("/enterprise/accounts/{account_id:int}/statement.pdf", guards=[page_for(*EMITTER)], include_in_schema=False)
async def statement(request: Request[Any, Any, Any], account_id: int) -> Response[bytes]:
    now = request.app.state.clock.now()
    # 404 for another's account
    data = await holdings.statement_data(rctx(request), identity(request), account_id, issued_at=now)
    pdf = render_statement(data, generated_at=now)
    disposition = f'attachment; filename="statement-{account_id}.pdf"'
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": disposition})


@get("/enterprise/accounts/{account_id:int}/transactions", guards=[page_for(*EMITTER)], include_in_schema=False)
async def transactions(
    request: Request[Any, Any, Any], account_id: int, before: FromQuery[int | None] = None
) -> Template:
    """One account's transactions, newest first, a page at a time (the API's cursor: before this id)."""
    who = identity(request)
    page_ = await holdings.list_account_transactions(
        rctx(request), who, account_id, limit=TX_PAGE, before_id=before
    )  # 404 for another enterprise's account
    _, accounts = await enterprises.own_enterprise(rctx(request), who)
    account = next((a for a in accounts if a.id == account_id), None)
    return page(
        request,
        "enterprise/transactions.html",
        account=account,
        account_id=account_id,
        items=page_.items,
        next_before=page_.next_before_id,
        first_page=before is None,
    )


@post("/enterprise/surrenders", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=303)
async def surrender(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """Surrender units against a period's obligation: the API's surrenderUnits with the form's one-time key, so a
    form sent twice surrenders once. Every failed rule is listed on the page."""
    who = identity(request)
    try:
        account, inst = (data.get("account_id") or "").strip(), (data.get("instrument_id") or "").strip()
        if not account.isdigit():
            raise InvalidInput("account_id", "Choose the account to surrender from.")
        if not inst.isdigit():
            raise InvalidInput("instrument_id", "Choose the instrument to surrender.")
        key = (data.get("form_key") or "").strip()
        if not (key.isalnum() and len(key) <= 64):
            raise InvalidInput("form_key", "The form expired; reload the page and try again.")
        req = rs.SurrenderUnits(
            account_id=int(account),
            instrument_id=int(inst),
            quantity=(data.get("quantity") or "").strip(),
            period=(data.get("period") or "").strip(),
        )
        await surrenders.surrender_units(rctx(request), who, req, f"{who.principal_id}:web-surrender-{key}")
    except AppError as exc:
        return await _home(request, status_code=exc.status, refusal=exc, refusal_at="surrender")
    return Redirect("/enterprise?done=surrender#obligations", status_code=303)


def _report_lines(data: dict[str, str]) -> list[cs.ReportLine]:
    """The report form's rows as the API's lines; a row left empty is skipped, the service judges the rest."""
    lines = []
    for i in range(REPORT_ROWS):
        row = {f: (data.get(f"line{i}.{f}") or "").strip() for f in LINE_FIELDS}
        if not any(row.values()):
            continue
        lines.append(
            cs.ReportLine(
                quantity=row["quantity"],
                unit=row["unit"],
                line_type=row["line_type"] or None,
                item=row["item"] or None,
                pollutant=row["pollutant"] or None,
            )
        )
    return lines


@post("/enterprise/reports/form", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=303)
async def submit_report_form(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """A report typed line by line: the API's submitReport (the figure is computed by the national method)."""
    who = identity(request)
    period = (data.get("period_id") or "").strip()
    try:
        if not period.isdigit():
            raise InvalidInput("period_id", "Choose the period the report is for.")
        lines = _report_lines(data)
        if not lines:
            raise InvalidInput("lines", "Fill in at least one line of the report.")
        await reports.submit_report(
            cctx(request), who, int(period), cs.SubmitReport(lines=lines, note=(data.get("note") or "").strip())
        )
    except AppError as exc:
        return await _home(request, status_code=exc.status, refusal=exc, refusal_at="reports", report_form=data)
    return Redirect("/enterprise?done=report#reports", status_code=303)


@post("/enterprise/consents", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=303)
async def grant(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    who = identity(request)
    ent, _ = await enterprises.own_enterprise(rctx(request), who)
    try:
        if ent is None:
            raise InvalidInput("enterprise_id", "Your organisation is not a registered enterprise.")
        bank = (data.get("bank_organisation_id") or "").strip()
        if not bank.isdigit():
            raise InvalidInput("bank_organisation_id", "Choose a bank.")
        purpose = (data.get("purpose") or "").strip()
        await consents.grant_consent(
            fctx(request), who, fs.GrantConsent(enterprise_id=ent.id, bank_organisation_id=int(bank), purpose=purpose)
        )
    except AppError as exc:
        return await _home(request, status_code=exc.status, refusal=exc, refusal_at="consents")
    return Redirect("/enterprise?done=consent#consents", status_code=303)


@post("/enterprise/consents/{consent_id:int}/revoke", guards=[page_for(*EMITTER)], include_in_schema=False,
      status_code=303)  # fmt: skip
async def revoke(request: Request[Any, Any, Any], consent_id: int) -> Response[Any]:
    try:
        await consents.revoke_consent(fctx(request), identity(request), consent_id)
    except AppError as exc:
        return await _home(request, status_code=exc.status, refusal=exc, refusal_at="consents")
    return Redirect("/enterprise?done=consent#consents", status_code=303)


@post("/enterprise/reports", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=200,
      request_max_body_size=4 * 1024 * 1024)  # fmt: skip
async def upload_report(request: Request[Any, Any, Any]) -> Template:
    """An emissions (or energy, discharge) report as an Excel or CSV file: every bad row is shown with its row
    number and column, and nothing is imported until the file is right."""
    form = await request.form()
    period = str(form.get("period_id") or "")
    upload = form.get("file")
    try:
        if not period.isdigit():
            raise InvalidInput("period_id", "Choose the period the report is for.")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("file", "Choose the report file (.xlsx or .csv).")
        data = await upload.read()
        out = await reports.upload_reports(cctx(request), identity(request), int(period), data, upload.filename[:200])
    except AppError as exc:
        return await _home(
            request, status_code=exc.status, refusal=exc, refusal_at="reports", row_errors=exc.extra.get("errors", [])
        )
    return await _home(request, uploaded=out)


def _parse_fact(kind: str, name: str, raw: str) -> Any:
    """A fact typed in a form, as the engine takes it: whole numbers (fen, bp, counts, years), exact decimals
    (energy intensity, as text), dates, yes/no."""
    raw = raw.strip()
    if kind == "bool":
        if raw not in ("true", "false"):
            raise InvalidInput(f"facts.{name}", "Choose yes or no.")
        return raw == "true"
    if kind in ("int", "count", "year", "bp"):
        if not raw.lstrip("-").isdigit():
            raise InvalidInput(f"facts.{name}", "Give a whole number.")
        return int(raw)
    if kind == "milli":  # an exact decimal such as 99.5 kgce/t: the text goes to the engine, never a float
        return raw
    if kind == "fen":  # typed in yuan, exactly
        return parse_money_fen(raw.replace(",", ""), field=f"facts.{name}")
    return raw  # str, date (YYYY-MM-DD; the engine checks it)


@get("/enterprise/eligibility", guards=[page_for(*EMITTER)], include_in_schema=False)
async def eligibility_form(request: Request[Any, Any, Any], programme: FromQuery[str | None] = None) -> Template:
    return await _eligibility(request, programme, None)


async def _eligibility(
    request: Request[Any, Any, Any],
    programme: str | None,
    form: dict[str, str] | None,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    listed = engine.list_programmes()
    codes = [str(p["code"]) for p in listed]
    chosen = programme if programme in codes else codes[0]
    described = engine.get_programme(chosen)
    return page(request, "enterprise/eligibility.html", status_code=status_code, programmes=listed,
                programme=chosen, described=described, form=form or {}, **extra)  # fmt: skip


@post("/enterprise/eligibility", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=200)
async def eligibility_check(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Template:
    """Evaluate the enterprise against one programme with the facts typed, and show every gate."""
    who = identity(request)
    programme = data.get("programme") or ""
    try:
        engine.get_programme(programme)  # an unknown programme is refused here
        facts = _facts(programme, data)
        ent, _ = await enterprises.own_enterprise(rctx(request), who)
        out = await evaluations.evaluate_eligibility(
            ictx(request), who,
            ins.EvaluateEligibility(facts=facts, enterprise_id=ent.id if ent else None, programmes=[programme]),
        )  # fmt: skip
    except AppError as exc:
        return await _eligibility(request, programme, data, status_code=exc.status, refusal=exc)
    return await _eligibility(request, programme, data, result=out)


def _facts(programme: str, data: dict[str, str]) -> dict[str, Any]:
    described = engine.get_programme(programme)
    facts = {}
    for f in described["facts"]:  # type: ignore[union-attr]
        raw = data.get(f"fact.{f['name']}", "")
        if raw.strip():
            facts[str(f["name"])] = _parse_fact(str(f["kind"]), str(f["name"]), raw)
    return facts


@post("/enterprise/claims", guards=[page_for(*EMITTER)], include_in_schema=False, status_code=303)
async def submit_claim(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Response[Any]:
    """Submit a subsidy claim with the facts of the self-check (the finance bureau's review recomputes it)."""
    who = identity(request)
    programme = data.get("programme") or ""
    try:
        ent, _ = await enterprises.own_enterprise(rctx(request), who)
        if ent is None:
            raise InvalidInput("enterprise_id", "Your organisation is not a registered enterprise.")
        await finance_claims.submit_claim(
            fctx(request),
            who,
            fs.SubmitClaim(
                enterprise_id=ent.id,
                programme=programme,
                project_ref=(data.get("project_ref") or "").strip(),
                period=(data.get("period") or "").strip(),
                facts=_facts(programme, data),
                payee_bank=(data.get("payee_bank") or "").strip(),
                payee_account_no=(data.get("payee_account_no") or "").strip(),
            ),
        )
    except AppError as exc:
        return await _eligibility(request, programme, data, status_code=exc.status, refusal=exc)
    return Redirect("/enterprise#claims", status_code=303)


ROUTES: list[Any] = [
    home, statement, transactions, surrender, submit_report_form, grant, revoke, upload_report, eligibility_form,
    eligibility_check, submit_claim,
]  # fmt: skip
