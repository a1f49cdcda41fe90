"""Compliance schemes: the carbon, energy-use, discharge and green-power programmes an authority runs, each with
the calendar template its periods are dated by (the national or a provincial default, or the authority's own).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from core.db import UnitOfWork
from core.errors import Conflict, Forbidden, InvalidInput
from core.identity import Identity
from core.text import clean_text
from core.workdays import is_working_day
from registry.compliance import schemas as s
from registry.compliance._common import AUTHORITY_BY_KIND, dump_json, param
from registry.compliance.context import ComplianceContext
from registry.compliance.models import ComplianceScheme
from registry.domain import calendar as cal

_SCHEME_CODE = re.compile(r"[A-Z][A-Z0-9-]{1,10}", re.ASCII)


async def create_scheme(ctx: ComplianceContext, who: Identity, req: s.CreateScheme) -> s.SchemeOut:
    code = req.code
    if not _SCHEME_CODE.fullmatch(code):
        raise InvalidInput("code", "Give 2 to 11 upper-case letters, digits or '-', starting with a letter.")
    name = clean_text(req.name, "name", max_len=200)
    role = AUTHORITY_BY_KIND[req.kind]
    if who.role is not role:
        raise Forbidden(f"Only the {role.value} runs {req.kind} schemes.")
    if req.kind == "carbon" and req.cea_scheme is None:
        raise InvalidInput("cea_scheme", "A carbon scheme names its allowances: 'national' or 'provincial'.")
    if req.kind != "carbon" and req.cea_scheme is not None:
        raise InvalidInput("cea_scheme", "Only carbon schemes have allowances.")
    template = req.calendar if req.calendar is not None else _default_template(ctx, req.kind, req.cea_scheme)
    try:
        parsed = cal.template_from_dict(template)
        cal.build_calendar(parsed, 2025, is_working_day=is_working_day)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("calendar", f"The calendar template is not valid: {exc}") from exc
    kinds = {r.kind for r in parsed.rules}
    missing = {cal.EventKind.SURRENDER_DEADLINE, cal.EventKind.SETTLEMENT} - kinds
    if missing:
        raise InvalidInput("calendar", f"The calendar needs the events: {', '.join(sorted(missing))}.")

    async def work(uow: UnitOfWork) -> s.SchemeOut:
        ses = uow.session
        if (await ses.execute(select(ComplianceScheme.id).where(ComplianceScheme.code == code))).first():
            raise Conflict("duplicate", f"A scheme with code {code} exists.", field="code")
        scheme = ComplianceScheme(
            code=code,
            name=name,
            kind=req.kind,
            cea_scheme=req.cea_scheme,
            authority_role=role.value,
            authority_organisation_id=who.organisation_id,
            template=dump_json(template),
            created_by=who.principal_id,
            created_at=ctx.clock.now(),
        )
        ses.add(scheme)
        await ses.flush()
        uow.audit(
            who.actor,
            "compliance.scheme.create",
            "compliance_scheme",
            str(scheme.id),
            {"code": code, "kind": req.kind},
        )
        return _scheme_out(scheme)

    return await ctx.db.run(work)


async def list_schemes(ctx: ComplianceContext, who: Identity) -> list[s.SchemeOut]:
    async def work(uow: UnitOfWork) -> list[s.SchemeOut]:
        rows = (await uow.session.execute(select(ComplianceScheme).order_by(ComplianceScheme.id))).scalars()
        return [_scheme_out(r) for r in rows]

    return await ctx.db.read(work)


def _default_template(ctx: ComplianceContext, kind: str, cea_scheme: str | None) -> dict[str, Any]:
    if kind == "carbon" and cea_scheme != "provincial":
        return _template_to_dict(cal.NATIONAL_CARBON_TEMPLATE)
    name = {
        "carbon": "calendar_provincial_carbon",
        "energy": "calendar_energy",
        "discharge": "calendar_discharge",
        "green_power": "calendar_green_power",
    }[kind]
    return dict(param(ctx, name))


def _template_to_dict(t: cal.CalendarTemplate) -> dict[str, Any]:
    events = []
    for r in t.rules:
        e: dict[str, Any] = {"kind": r.kind.value}
        if isinstance(r.when, cal.FixedDate):
            e.update(year_offset=r.when.year_offset, month=r.when.month, day=r.when.day)
        else:
            e.update(after=r.when.event.value, days=r.when.days)
        e.update(is_deadline=r.is_deadline, shift=r.shift.value, description=r.description, citation=r.citation)
        events.append(e)
    return {"scheme": t.scheme, "note": t.note, "events": events}


def _scheme_out(r: ComplianceScheme) -> s.SchemeOut:
    return s.SchemeOut(
        id=r.id or 0,
        code=r.code,
        name=r.name,
        kind=r.kind,
        cea_scheme=r.cea_scheme,
        authority_role=r.authority_role,
        calendar=json.loads(r.template),
        created_at=r.created_at,
    )
