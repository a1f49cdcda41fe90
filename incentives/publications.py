"""Publishing a dated parameter in the system: a new value or catalogue edition with its validity and citation,
published by one person and confirmed by a second (four-eyes), on top of the shipped YAML.

Nothing is overwritten. A confirmed publication becomes one more bitemporal entry, known from the Shanghai day it
was confirmed (`known_from`, the entry's `published_on`): a query "as known on" an earlier day still answers with
what was known then, and a day before the new value's `valid_from` still gets the older value. A publication
whose validity overlaps another entry of the same parameter known from the same day is refused at confirmation
(the lookup could not decide between them), and so is a value not of the parameter's kind.

Each process answers from `incentives.parameters.current_parameters()`; `refresh` installs the confirmed
publications of the database there (the server calls it on start, the evaluation use cases before evaluating,
and confirmation right after its commit).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import openpyxl
from sqlalchemy import func, select

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, Forbidden, InvalidInput, NotFound
from core.identity import Identity, Role
from core.text import clean_text
from incentives import parameters as loader
from incentives import schemas as s
from incentives.context import IncentivesContext
from incentives.domain.params import (
    Citation,
    ParameterEntry,
    ParameterError,
    ParameterSet,
    check_kind,
    value_to_json,
)
from incentives.models import IncentiveParameterPublication as Row

log = logging.getLogger(__name__)

R = Role
PUBLISHERS = (R.REGULATOR, R.ENERGY_AUTHORITY, R.FINANCE_REVIEWER, R.FINANCE_APPROVER)
READERS = (*PUBLISHERS, R.AUDITOR)
STATUSES = ("pending", "confirmed", "rejected")
NOT_CONFIRMED = "Not confirmed against an official text."

CATALOGUE_FILE_BYTES_MAX = 4 * 1024 * 1024
CATALOGUE_ROWS_MAX = 5_000
"""A limit on everything: a catalogue edition file is at most 4 MB and 5,000 items."""


def _shipped(name: str) -> ParameterEntry:
    """The first shipped entry of `name` (kind, unit, description); only shipped parameters can be published."""
    try:
        return loader.default_parameters().history(name)[0]
    except KeyError:
        raise AppError(
            "unknown-parameter", f"No parameter is named {name!r}; listParameters lists them.", field="name"
        ) from None


def _entry(row: Row) -> ParameterEntry:
    shipped = _shipped(row.name)
    assert row.known_from is not None
    return ParameterEntry(
        name=row.name, kind=row.kind, unit=shipped.unit,
        value=loader.parse_value(row.kind, json.loads(row.value_json), f"publication {row.id}"),
        valid_from=row.valid_from, valid_to=row.valid_to, published_on=row.known_from,
        citation=Citation(row.citation_document, row.citation_article), note=row.note, confirmed=row.official,
        description=shipped.description,
    )  # fmt: skip


def _out(row: Row) -> dict[str, Any]:
    value = json.loads(row.value_json)
    summary = (
        f"{value.get('edition')} ({len(value.get('items') or [])})" if row.kind == "catalogue" else json.dumps(
            value, ensure_ascii=False)
    )  # fmt: skip
    entry_id = f"{row.name}@{row.valid_from.isoformat()}#{row.known_from.isoformat()}" if row.known_from else None
    return {
        "id": row.id, "name": row.name, "kind": row.kind, "value": value, "value_text": summary,
        "valid_from": row.valid_from.isoformat(), "valid_to": row.valid_to.isoformat() if row.valid_to else None,
        "citation": {"document": row.citation_document, "article": row.citation_article}, "note": row.note,
        "official": row.official, "status": row.status, "source": row.source, "source_sha256": row.source_sha256,
        "published_by": row.published_by, "published_role": row.published_role, "published_at": row.published_at,
        "decided_by": row.decided_by, "decided_at": row.decided_at, "decision_reason": row.decision_reason,
        "known_from": row.known_from.isoformat() if row.known_from else None, "entry_id": entry_id,
    }  # fmt: skip


def _require(who: Identity, roles: tuple[Role, ...]) -> None:
    if who.role not in roles:
        raise Forbidden()


async def _confirmed_rows(uow: UnitOfWork) -> list[Row]:
    q = select(Row).where(Row.status == "confirmed").order_by(Row.id)  # type: ignore[arg-type]
    return list((await uow.session.execute(q)).scalars())


def _check(published: list[ParameterEntry]) -> ParameterSet:
    try:
        return loader.combined(published)
    except ParameterError as exc:
        raise AppError(
            "invalid-state",
            "This value cannot take effect beside the entries already known: "
            + "; ".join(exc.problems)
            + ". Give a validity that does not overlap another value published the same day, or confirm it "
            "another day.",
        ) from None


async def publish_parameter(
    ctx: IncentivesContext,
    who: Identity,
    name: str,
    req: s.PublishParameter,
    *,
    source: str = "api",
    source_sha256: str = "",
) -> dict[str, Any]:
    """Record a new value of `name`, pending a second person's confirmation. The value, its kind, its dates and
    its citation are checked now; whether it fits beside the other entries is checked at confirmation."""
    _require(who, PUBLISHERS)
    shipped = _shipped(name)
    try:
        value = loader.parse_value(shipped.kind, req.value, "value")
    except ParameterError as exc:
        raise InvalidInput("value", f"Not a {shipped.kind} value: " + "; ".join(exc.problems)) from None
    if not check_kind(shipped.kind, value):
        raise InvalidInput("value", f"{req.value!r} is not a {shipped.kind} value (this parameter's kind).")
    if req.valid_to is not None and req.valid_to <= req.valid_from:
        raise InvalidInput("valid_to", "The validity must end after it starts (valid_to is the first day it "
                           "no longer applies).")  # fmt: skip
    document = clean_text(req.citation.document, "citation.document", max_len=200).strip()
    article = clean_text(req.citation.article, "citation.article", max_len=200).strip()
    note = clean_text(req.note, "note", max_len=2000, required=False).strip()
    if not req.official and "not confirmed" not in note.lower():
        note = f"{NOT_CONFIRMED} {note}".strip()
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        row = Row(
            name=name, kind=shipped.kind, value_json=json.dumps(value_to_json(value), ensure_ascii=False),
            valid_from=req.valid_from, valid_to=req.valid_to, citation_document=document, citation_article=article,
            note=note, official=req.official, status="pending", source=source, source_sha256=source_sha256,
            published_by=who.principal_id, published_role=who.role.value, organisation_id=who.organisation_id,
            published_at=now,
        )  # fmt: skip
        uow.session.add(row)
        await uow.session.flush()
        uow.audit(who.actor, "parameter.publish", "incentives_parameter_publication", str(row.id), {
            "name": name, "valid_from": req.valid_from.isoformat(),
            "valid_to": req.valid_to.isoformat() if req.valid_to else None, "citation": [document, article],
            "source": source, "value_sha256": hashlib.sha256(row.value_json.encode()).hexdigest(),
        })  # fmt: skip
        return _out(row)

    return await ctx.db.run(work)


async def decide_publication(
    ctx: IncentivesContext, who: Identity, publication_id: int, req: s.ConfirmParameter
) -> dict[str, Any]:
    """The second person confirms (the value is known from today on) or rejects a pending publication."""
    _require(who, PUBLISHERS)
    now = ctx.clock.now()
    today = business_date(now)
    reason = clean_text(req.reason, "reason", max_len=500, required=req.decision == "reject").strip()

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        row = await ses.get(Row, publication_id)
        if row is None:
            raise NotFound("parameter publication", field="publication_id")
        # Lock every publication of this parameter, so that two confirmations of overlapping values on one day
        # cannot both pass the check below (the second waits, then sees the first).
        await ses.execute(select(Row.id).where(Row.name == row.name).with_for_update())  # type: ignore[arg-type]
        await ses.refresh(row)
        if row.status != "pending":
            raise AppError("invalid-state", f"This publication is already {row.status}.")
        if row.published_by == who.principal_id:
            raise AppError("four-eyes-required", "You published this value; another person must confirm it.")
        row.decided_by, row.decided_at, row.decision_reason = who.principal_id, now, reason
        if req.decision == "reject":
            row.status = "rejected"
        else:
            row.known_from = today
            _check([*(_entry(r) for r in await _confirmed_rows(uow)), _entry(row)])
            row.status = "confirmed"
        await ses.flush()
        uow.audit(who.actor, f"parameter.{req.decision}", "incentives_parameter_publication", str(row.id), {
            "name": row.name, "known_from": row.known_from.isoformat() if row.known_from else None,
            "reason": reason,
        })  # fmt: skip
        return _out(row)

    out = await ctx.db.run(work)
    await refresh(ctx)
    return out


async def list_publications(
    ctx: IncentivesContext,
    who: Identity,
    *,
    name: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Publications, newest first; filter by parameter and status; page with `before_id` (the last id seen)."""
    _require(who, READERS)
    if status is not None and status not in STATUSES:
        raise InvalidInput("status", f"Give one of {', '.join(STATUSES)}.")

    async def work(uow: UnitOfWork) -> list[dict[str, Any]]:
        q = select(Row)
        if name:
            q = q.where(Row.name == name)
        if status:
            q = q.where(Row.status == status)
        if before_id is not None:
            q = q.where(Row.id < before_id)  # type: ignore[operator]
        q = q.order_by(Row.id.desc()).limit(max(1, min(limit, 500)))  # type: ignore[union-attr]
        return [_out(r) for r in (await uow.session.execute(q)).scalars()]

    return await ctx.db.read(work)


_installed: dict[str, tuple[int, int] | None] = {"signature": None}


async def refresh(ctx: IncentivesContext) -> ParameterSet:
    """Install this database's confirmed publications as the overlay the engine answers from (cheap when nothing
    changed: confirmed rows are never edited, so their count and highest id name the set)."""

    async def signature(uow: UnitOfWork) -> tuple[int, int]:
        q = select(func.count(Row.id), func.max(Row.id)).where(Row.status == "confirmed")  # type: ignore[arg-type]
        count, top = (await uow.session.execute(q)).one()
        return int(count or 0), int(top or 0)

    sig = await ctx.db.read(signature)
    if sig == _installed["signature"] and (sig[0] == 0) == (not loader.installed_published()):
        return loader.current_parameters()

    async def entries(uow: UnitOfWork) -> list[ParameterEntry]:
        return [_entry(r) for r in await _confirmed_rows(uow)]

    published = await ctx.db.read(entries)
    try:
        ps = loader.install_published(published)
    except ParameterError as exc:  # never expected: confirmation checks the same; keep answering as before
        log.error("confirmed parameter publications do not load together: %s", exc)
        return loader.current_parameters()
    _installed["signature"] = sig
    return ps


async def start_published_parameters(ctx: IncentivesContext) -> None:
    """On a server's start: answer from this database's confirmed publications (the shipped set alone when the
    database has no schema yet; /ready reports that)."""
    reset()
    try:
        await refresh(ctx)
    except Exception:  # an unmigrated database must not stop the server from answering /ready
        log.warning("published parameters not loaded", exc_info=True)


def reset() -> None:
    """Back to the shipped set only (tests; a process serving another database)."""
    _installed["signature"] = None
    loader.install_published(())


# ------------------------------------------------------------------------------------------- input at the edge


def value_from_text(kind: str, text: str) -> Any:
    """A value typed into a form, as the JSON the API takes: `int` an integer, `bool` 是/否/true/false, `ratio`
    "10/90", `str_list` one item per line or comma, `str` the text. Refused (InvalidInput) when it is not one."""
    raw = text.strip()
    if kind == "int":
        try:
            return int(raw.replace(",", ""))
        except ValueError:
            raise InvalidInput("value", "Give a whole number (rates in basis points: 3 % is 300).") from None
    if kind == "bool":
        if raw.lower() in ("true", "yes", "1", "是"):
            return True
        if raw.lower() in ("false", "no", "0", "否"):
            return False
        raise InvalidInput("value", "Give 是 or 否 (true or false).")
    if kind == "ratio":
        num, sep, den = raw.partition("/")
        try:
            if sep:
                return {"numerator": int(num), "denominator": int(den)}
        except ValueError:
            pass
        raise InvalidInput("value", "Give an exact ratio such as 10/90.")
    if kind == "str_list":
        return [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
    if kind == "catalogue":
        raise InvalidInput("value", "A catalogue edition is published by uploading its Excel file.")
    return raw


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    message: str


class CatalogueFileError(AppError):
    """An Excel catalogue with problems: every bad row listed with its row number, column and problem."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(
            "invalid-input", f"The catalogue file has {len(problems)} problem(s); nothing was published.",
            field="file", extra={"rows": [p.__dict__ for p in problems]},
        )  # fmt: skip
        self.problems = problems


def catalogue_from_excel(data: bytes, edition: str) -> dict[str, Any]:
    """A catalogue edition from an .xlsx file: the first sheet, a header row naming `code`, `name` and any rule
    attributes (e.g. `refund_bp`), then one item per row. Whole numbers stay integers, TRUE/FALSE booleans, the
    rest text; a fraction is refused (rates are basis points). Raises CatalogueFileError listing every bad row."""
    edition = clean_text(edition, "edition", max_len=200).strip()
    if len(data) > CATALOGUE_FILE_BYTES_MAX:
        raise InvalidInput("file", f"The file is over {CATALOGUE_FILE_BYTES_MAX // (1024 * 1024)} MB.")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # any unreadable upload is the same answer to the person
        raise InvalidInput("file", "This is not an Excel (.xlsx) file.") from None
    rows = list(book.worksheets[0].iter_rows(values_only=True, max_row=CATALOGUE_ROWS_MAX + 2))
    book.close()
    if not rows:
        raise CatalogueFileError([RowProblem(1, "", "The sheet is empty; the first row names the columns.")])
    header = [str(c).strip() if c is not None else "" for c in rows[0]]
    problems: list[RowProblem] = []
    for needed in ("code", "name"):
        if needed not in header:
            problems.append(RowProblem(1, needed, f"The header row needs a column named {needed}."))
    if len(rows) > CATALOGUE_ROWS_MAX + 1:
        problems.append(RowProblem(CATALOGUE_ROWS_MAX + 2, "", f"At most {CATALOGUE_ROWS_MAX} items."))
    if problems:
        raise CatalogueFileError(problems)
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows[1:], start=2):
        if all(c is None or str(c).strip() == "" for c in cells):
            continue
        item: dict[str, Any] = {}
        for column, cell in zip(header, cells, strict=False):
            if not column or cell is None or (isinstance(cell, str) and not cell.strip()):
                continue
            if isinstance(cell, (bool, int)):
                item[column] = cell
            elif isinstance(cell, float):
                if cell.is_integer():
                    item[column] = int(cell)
                else:
                    problems.append(RowProblem(number, column, f"{cell} is a fraction; give basis points."))
            else:
                item[column] = str(cell).strip()
        for needed in ("code", "name"):
            if needed in item and not isinstance(item[needed], str):
                item[needed] = str(item[needed])
            if not item.get(needed):
                problems.append(RowProblem(number, needed, f"The {needed} is empty."))
        code = item.get("code")
        if code:
            if code in seen:
                problems.append(RowProblem(number, "code", f"The code {code} is already on row {seen[code]}."))
            seen.setdefault(code, number)
        items.append(item)
    if not items and not problems:
        problems.append(RowProblem(2, "", "The file lists no items."))
    if problems:
        raise CatalogueFileError(problems)
    return {"edition": edition, "items": items}


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
