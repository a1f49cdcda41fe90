"""The policy page for the finance bureau and the authorities: every dated parameter and catalogue the incentive
engine uses, with its history (validity, publication date, value, citation), what was in force on a chosen day as
known on another, and publishing: a new value (typed) or catalogue edition (Excel upload) with its effective date
and citation, pending until a second person confirms it (incentives.publications, the same use cases the API's
publishParameter, confirmParameter and listParameterPublications call). The old entries stay."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template

from core.errors import AppError, InvalidInput
from core.identity import Role
from incentives import catalogue, publications
from incentives import schemas as s
from incentives.context import IncentivesContext
from web.app import page
from web.auth import identity, page_for

READERS = (Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER, Role.AUDITOR)
PUBLISHERS = publications.PUBLISHERS
FORM_FIELDS = ("value", "valid_from", "valid_to", "document", "article", "note", "edition")


def ctx(request: Request[Any, Any, Any]) -> IncentivesContext:
    return request.app.state.incentives.ctx  # type: ignore[no-any-return]


def _day(text: str | None, field: str, required: bool = False) -> dt.date | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise InvalidInput(field, "Give the day as YYYY-MM-DD.")
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, "Give the day as YYYY-MM-DD.") from None


async def _page(
    request: Request[Any, Any, Any],
    name: str | None = None,
    on: str | None = None,
    known_on: str | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    c, who = ctx(request), identity(request)
    await publications.refresh(c)
    day, known = _day(on, "on"), _day(known_on, "known_on")
    detail = history = None
    if name:
        detail = catalogue.parameter_history(name[:100], on=day, known_on=known if known else day)
        history = await publications.list_publications(c, who, name=detail["name"], limit=100)
        mine = {p["entry_id"]: p for p in history if p["entry_id"]}
        detail["entries"] = [{**e, "publication": mine.get(str(e["id"]))} for e in detail["entries"]]  # type: ignore[attr-defined]
    pending = await publications.list_publications(c, who, status="pending", limit=100)
    return page(
        request, "policy/index.html", status_code=status_code, params=catalogue.list_parameters(), detail=detail,
        history=history, pending=pending, on=on or "", known_on=known_on or "", can_publish=who.role in PUBLISHERS,
        my_id=who.principal_id, form=extra.pop("form", {}), **extra,
    )  # fmt: skip


@get("/policy", guards=[page_for(*READERS)], include_in_schema=False)
async def policy(
    request: Request[Any, Any, Any],
    name: FromQuery[str | None] = None,
    on: FromQuery[str | None] = None,
    known_on: FromQuery[str | None] = None,
) -> Template:
    return await _page(request, name, on, known_on)


def _request(form: dict[str, str], value: Any) -> s.PublishParameter:
    valid_from = _day(form.get("valid_from"), "valid_from", required=True)
    assert valid_from is not None
    return s.PublishParameter(
        value=value, valid_from=valid_from, valid_to=_day(form.get("valid_to"), "valid_to"),
        citation=s.CitationIn(document=form.get("document", ""), article=form.get("article", "")),
        note=form.get("note", ""), official=form.get("official") == "1",
    )  # fmt: skip


def _back(name: str) -> Redirect:
    return Redirect(f"/policy?name={quote(name)}", status_code=303)


@post("/policy/publications", guards=[page_for(*PUBLISHERS)], include_in_schema=False, status_code=303)
async def publish(request: Request[Any, Any, Any], data: URLEncodedBody[dict[str, str]]) -> Redirect | Template:
    name = (data.get("name") or "")[:100]
    form = {k: (data.get(k) or "")[:2000] for k in (*FORM_FIELDS, "official")}
    try:
        kind = str(catalogue.parameter_history(name)["kind"])
        req = _request(form, publications.value_from_text(kind, form["value"]))
        await publications.publish_parameter(ctx(request), identity(request), name, req, source="form")
    except AppError as exc:
        return await _page(request, name, status_code=exc.status, refusal=exc, form=form)
    return _back(name)


@post("/policy/publications/catalogue", guards=[page_for(*PUBLISHERS)], include_in_schema=False, status_code=303)
async def publish_catalogue(request: Request[Any, Any, Any]) -> Redirect | Template:
    """A catalogue edition as an Excel file (code, name and attribute columns): every bad row is shown with its row
    number and column, and nothing is published until the file is right."""
    raw = await request.form()
    name = str(raw.get("name") or "")[:100]
    form = {k: str(raw.get(k) or "")[:2000] for k in (*FORM_FIELDS, "official")}
    upload = raw.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("file", "Choose the catalogue file (.xlsx).")
        content = await upload.read()
        value = publications.catalogue_from_excel(content, form["edition"])
        req = _request(form, value)
        await publications.publish_parameter(
            ctx(request), identity(request), name, req, source="excel", source_sha256=publications.file_sha256(content)
        )
    except AppError as exc:
        return await _page(
            request, name, status_code=exc.status, refusal=exc, form=form, row_errors=exc.extra.get("rows", [])
        )
    return _back(name)


@post(
    "/policy/publications/{publication_id:int}/decision",
    guards=[page_for(*PUBLISHERS)],
    include_in_schema=False,
    status_code=303,
)
async def decide(
    request: Request[Any, Any, Any], publication_id: int, data: URLEncodedBody[dict[str, str]]
) -> Redirect | Template:
    decision = data.get("decision")
    name = (data.get("name") or "")[:100]
    try:
        if decision not in ("confirm", "reject"):  # explicit: no decision is taken for the person
            raise InvalidInput("decision", "Confirm or reject.")
        out = await publications.decide_publication(
            ctx(request), identity(request), publication_id,
            s.ConfirmParameter(decision=decision, reason=(data.get("reason") or "")[:500]),
        )  # fmt: skip
    except AppError as exc:
        return await _page(request, name or None, status_code=exc.status, refusal=exc)
    return _back(str(out["name"]))


ROUTES: list[Any] = [policy, publish, publish_catalogue, decide]
