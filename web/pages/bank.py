"""Pages for a bank officer: a green-credit query for an enterprise that consented (refused, in words, without the
consent), the signed answer with its gates and report PDF, and the bank's query history."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import URLEncodedBody
from litestar.response import Template

from core.errors import AppError
from core.identity import Role
from finance import green_credit
from finance import schemas as s
from finance.context import FinanceContext
from finance.pdf import render_green_credit_report
from web.app import page
from web.auth import identity, page_for


def ctx(request: Request[Any, Any, Any]) -> FinanceContext:
    return request.app.state.finance.ctx  # type: ignore[no-any-return]


async def _page(request: Request[Any, Any, Any], status_code: int = 200, **extra: Any) -> Template:
    history = await green_credit.list_queries(ctx(request), identity(request), 50)
    return page(request, "bank/index.html", status_code=status_code, history=history, **extra)


@get("/bank", guards=[page_for(Role.BANK)], include_in_schema=False)
async def bank_home(request: Request[Any, Any, Any]) -> Template:
    return await _page(request, form={"uscc": "", "purpose": ""})


@post("/bank/queries", guards=[page_for(Role.BANK)], include_in_schema=False, status_code=200)
async def ask(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Template:
    form = {"uscc": (data.get("uscc") or "").strip().upper()[:18], "purpose": (data.get("purpose") or "").strip()[:200]}
    try:
        out = await green_credit.query_green_credit(
            ctx(request), identity(request), s.GreenCreditQuery(purpose=form["purpose"], uscc=form["uscc"] or None)
        )
    except AppError as exc:
        return await _page(request, status_code=exc.status, form=form, refusal=exc)
    return await _page(request, form=form, answer=out.answer, query_id=out.query_id, signature=out.signature)


@get("/bank/queries/{query_id:int}/report.pdf", guards=[page_for(Role.BANK)], include_in_schema=False)
async def report(request: Request[Any, Any, Any], query_id: int) -> Response[bytes]:
    data = await green_credit.green_credit_report(ctx(request), identity(request), query_id)
    pdf = render_green_credit_report(data, generated_at=data["issued_at"])
    disposition = f'attachment; filename="{data["document_no"]}.pdf"'
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": disposition})


ROUTES: list[Any] = [bank_home, ask, report]
