"""Pages for the finance bureau (财政局): the claims queue, a claim with its determination and the review actions
(four-eyes enforced by the same service calls as the API), budgets with disbursement batches and penalties."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromQuery, Parameter, URLEncodedBody
from litestar.response import Redirect, Template

from core.csvfile import csv_response
from core.errors import AppError, InvalidInput
from core.identity import Role
from core.quantity import parse_money_fen
from finance import budgets, claims, claims_review, disbursement, letters, penalties
from finance import schemas as s
from finance.context import FinanceContext
from finance.domain.workflow import State
from finance.pdf import render_decision_letter
from incentives.determinations import gate_out
from web.app import lang_of, page
from web.auth import identity, page_for
from web.i18n import translate

STAFF = (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER)
READERS = (*STAFF, Role.AUDITOR)
PAGE_SIZE = 25
STATES = tuple(st.value for st in State)
SORTS = ("-submitted_at", "submitted_at", "-amount", "amount")


def ctx(request: Request[Any, Any, Any]) -> FinanceContext:
    return request.app.state.finance.ctx  # type: ignore[no-any-return]


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, "Give a date as YYYY-MM-DD.") from None


def _fen(value: str | None, field: str) -> int | None:
    """Yuan typed in a filter ("1,200,000.50" or "1200000.5") as exact fen."""
    return None if not value else parse_money_fen(value.replace(",", ""), field=field)


@get("/finance/claims", guards=[page_for(*READERS)], include_in_schema=False)
async def claims_queue(
    request: Request[Any, Any, Any],
    programme: FromQuery[str | None] = None,
    claim_state: Annotated[str | None, Parameter(query="state", max_length=24)] = None,
    city: FromQuery[str | None] = None,
    amount_min: FromQuery[str | None] = None,
    amount_max: FromQuery[str | None] = None,
    submitted_from: FromQuery[str | None] = None,
    submitted_to: FromQuery[str | None] = None,
    sort: FromQuery[str] = "-submitted_at",
    offset: FromQuery[int] = 0,
) -> Template:
    filters = {
        "programme": (programme or "").strip()[:40] or None,
        "state": claim_state if claim_state in STATES else None,
        "city": (city or "").strip()[:8] or None,
        "amount_min": (amount_min or "").strip() or None,
        "amount_max": (amount_max or "").strip() or None,
        "submitted_from": submitted_from or None,
        "submitted_to": submitted_to or None,
        "sort": sort if sort in SORTS else "-submitted_at",
    }
    result = await claims.list_claims(
        ctx(request),
        identity(request),
        state=filters["state"],
        programme=filters["programme"],
        city=filters["city"],
        amount_min_fen=_fen(filters["amount_min"], "amount_min"),
        amount_max_fen=_fen(filters["amount_max"], "amount_max"),
        submitted_from=_date(filters["submitted_from"], "submitted_from"),
        submitted_to=_date(filters["submitted_to"], "submitted_to"),
        sort=str(filters["sort"]),
        offset=max(0, min(offset, 100_000)),
        limit=PAGE_SIZE,
    )
    kept = {k: v for k, v in filters.items() if v}
    next_url = None
    if result.next_offset is not None:
        next_url = "/finance/claims?" + urlencode({**kept, "offset": result.next_offset})
    prev_url = None
    if offset > 0:
        prev_url = "/finance/claims?" + urlencode({**kept, "offset": max(0, offset - PAGE_SIZE)})
    return page(
        request,
        "finance/claims.html",
        claims=result.items,
        filters=filters,
        states=STATES,
        sorts=SORTS,
        next_url=next_url,
        prev_url=prev_url,
    )


@get("/finance/claims/{claim_id:int}", guards=[page_for(*READERS)], include_in_schema=False)
async def claim_page(request: Request[Any, Any, Any], claim_id: int) -> Template:
    who = identity(request)
    claim = await claims.get_claim(ctx(request), who, claim_id)
    det = claim.determination or {}
    gates = [gate_out(g) for g in det.get("gates") or []]
    reviewer_is_me = claim.reviewed_by is not None and claim.reviewed_by == who.principal_id
    return page(
        request,
        "finance/claim.html",
        claim=claim,
        gates=gates,
        det=det,
        me=who,
        reviewer_is_me=reviewer_is_me,
        can=set(claim.allowed_actions),
    )


async def _act(request: Request[Any, Any, Any], claim_id: int, action: str, form: dict[str, str]) -> Response[Any]:
    who = identity(request)
    c = ctx(request)
    note = (form.get("note") or "").strip()
    reason = (form.get("reason") or "").strip()
    try:
        if action == "formal-check":
            passed = form.get("passed") == "true"
            await claims.formal_check(c, who, claim_id, s.FormalCheck(passed=passed, reason=reason))
        elif action == "review":
            await claims_review.review_claim(c, who, claim_id, s.Note(note=note))
        elif action == "approve":
            await claims_review.approve_claim(c, who, claim_id, s.Note(note=note))
        elif action == "finalise":
            await claims_review.finalise_claim(c, who, claim_id)
        elif action == "reject":
            if not reason:
                raise InvalidInput("reason", "Say why the claim is rejected.")
            await claims_review.reject_claim(c, who, claim_id, s.Reason(reason=reason))
        else:
            raise InvalidInput("action", "Unknown action.")
    except AppError as exc:
        claim = await claims.get_claim(c, who, claim_id)
        return page(
            request,
            "finance/claim.html",
            status_code=exc.status,
            claim=claim,
            gates=[gate_out(g) for g in (claim.determination or {}).get("gates") or []],
            det=claim.determination or {},
            me=who,
            reviewer_is_me=claim.reviewed_by == who.principal_id,
            can=set(claim.allowed_actions),
            refusal=exc,
        )
    return Redirect(f"/finance/claims/{claim_id}", status_code=303)


@post(
    "/finance/claims/{claim_id:int}/{action:str}", guards=[page_for(*STAFF)], include_in_schema=False, status_code=303
)
async def claim_action(
    request: Request[Any, Any, Any], claim_id: int, action: str, data: URLEncodedBody[dict[str, str]]
) -> Response[Any]:
    return await _act(request, claim_id, action, data)


@get("/finance/claims/{claim_id:int}/decision-letter.pdf", guards=[page_for(*READERS)], include_in_schema=False)
async def decision_letter(request: Request[Any, Any, Any], claim_id: int) -> Response[bytes]:
    record, code, issued_at = await letters.decision_letter(ctx(request), identity(request), claim_id)
    pdf = render_decision_letter(record, code, generated_at=issued_at)
    name = record.get("document_no", claim_id)
    disposition = f'attachment; filename="{name}.pdf"'
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": disposition})


@get("/finance/budgets", guards=[page_for(*READERS)], include_in_schema=False)
async def budgets_page(request: Request[Any, Any, Any]) -> Template:
    who = identity(request)
    c = ctx(request)
    rows = await budgets.list_budgets(c, who)
    batches = await disbursement.list_disbursements(c, who)
    notices = await penalties.list_penalties(c, who, limit=50)
    lang = lang_of(request)
    # The chart shows whole yuan (fen // 100): a picture of the budget, the table beside it has the exact figures.
    series = (
        ("finance.appropriated", "appropriated_fen", "#9fd8b7"),
        ("finance.committed", "committed_fen", "#f2c14e"),
        ("finance.disbursed", "disbursed_fen", "#1f7a4d"),
    )
    chart = {
        "type": "bar",
        "data": {
            "labels": [f"{b.programme} {b.fiscal_year}" for b in rows],
            "datasets": [
                {"label": translate(key, lang), "data": [getattr(b, attr) // 100 for b in rows], "backgroundColor": c_}
                for key, attr, c_ in series
            ],
        },
        "options": {"plugins": {"legend": {"position": "bottom"}}},
    }
    return page(request, "finance/budgets.html", budgets=rows, batches=batches, notices=notices, chart=chart)


@get("/finance/disbursements/{batch_id:int}/payment-file.csv", guards=[page_for(*READERS)], include_in_schema=False)
async def payment_file(request: Request[Any, Any, Any], batch_id: int) -> Response[Any]:
    batch_no, content = await disbursement.payment_file(ctx(request), identity(request), batch_id)
    return csv_response(content, f"{batch_no}.csv")


ROUTES: list[Any] = [claims_queue, claim_page, claim_action, decision_letter, budgets_page, payment_file]
