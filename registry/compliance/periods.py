"""Compliance periods: a scheme's year, opened with the dates of the authority's notice (event overrides, the
correction window), the eligible vintages and offset cap, k, and the reference price the regulator enters when
the market has none; and the month whose average price a carbon shortfall is fined at.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from sqlalchemy import select

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.events import emit
from core.identity import Identity
from core.quantity import parse_money_fen
from core.text import clean_text
from registry.compliance import schemas as s
from registry.compliance._common import calendar_of, dump_json, param, reference_month_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceScheme, Obligation
from registry.compliance.queries import load_period, load_period_by_code, require_authority, require_open
from registry.domain import calendar as cal
from registry.models import Enterprise

_PERIOD_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,15}", re.ASCII)


async def create_period(ctx: ComplianceContext, who: Identity, req: s.CreatePeriod) -> s.PeriodOut:
    if not 2000 <= req.year <= 2100:
        raise InvalidInput("year", "Give a year between 2000 and 2100.")
    region = clean_text(req.region, "region", max_len=40) if req.region else None

    async def work(uow: UnitOfWork) -> s.PeriodOut:
        ses = uow.session
        scheme = await ses.get(ComplianceScheme, req.scheme_id)
        if scheme is None:
            raise NotFound("scheme", field="scheme_id")
        require_authority(who, scheme)
        code = req.code or f"{scheme.code}-{req.year}"
        if not _PERIOD_CODE.fullmatch(code):
            raise InvalidInput("code", "Give 2 to 16 upper-case letters, digits or '-'.")
        try:
            overrides = {cal.EventKind(k).value: v.isoformat() for k, v in req.overrides.items()}
        except ValueError as exc:
            raise InvalidInput("overrides", f"Unknown event kind: {exc}.") from exc
        vintages = sorted(set(req.eligible_vintages or [req.year]))
        if any(not 2000 <= v <= 2100 for v in vintages):
            raise InvalidInput("eligible_vintages", "Give years between 2000 and 2100.")
        offsets = sorted(set(req.eligible_offset_vintages)) if req.eligible_offset_vintages is not None else None
        today = business_date(ctx.clock.now())
        cap = req.offset_cap_bps if req.offset_cap_bps is not None else int(param(ctx, "offset_cap_bps", today))
        if not 0 <= cap <= int(param(ctx, "offset_cap_bps", today)):
            raise InvalidInput("offset_cap_bps", "The offset cap is 0 to 500 bps (5 %, 办法 第二十九条).")
        if req.multiplier_k is not None and not 5 <= req.multiplier_k <= 10:
            raise InvalidInput("multiplier_k", "k is an integer from 5 to 10 (国务院令第775号 第二十四条).")
        if (await ses.execute(select(CompliancePeriod.id).where(CompliancePeriod.code == code))).first():
            raise Conflict("duplicate", f"A period with code {code} exists.", field="code")
        if (
            await ses.execute(
                select(CompliancePeriod.id).where(
                    CompliancePeriod.scheme_id == scheme.id, CompliancePeriod.year == req.year
                )
            )
        ).first():
            raise Conflict("duplicate", f"Scheme {scheme.code} already has a period for {req.year}.", field="year")
        period = CompliancePeriod(
            scheme_id=scheme.id or 0,
            code=code,
            year=req.year,
            status="open",
            overrides=dump_json(overrides),
            eligible_vintages=dump_json(vintages),
            eligible_offset_vintages=dump_json(offsets) if offsets is not None else None,
            offset_cap_bps=cap,
            late_until=req.late_until,
            multiplier_k=req.multiplier_k,
            region=region,
            created_by=who.principal_id,
            created_at=ctx.clock.now(),
        )
        try:
            calendar = calendar_of(scheme, period)
        except (ValueError, KeyError) as exc:
            raise InvalidInput("overrides", f"The calendar cannot be built: {exc}") from exc
        deadline = calendar.event(cal.EventKind.SURRENDER_DEADLINE).business_date
        if req.late_until is not None and req.late_until < deadline:
            raise InvalidInput("late_until", "The correction window ends on or after the surrender deadline.")
        ses.add(period)
        await ses.flush()
        uow.audit(
            who.actor,
            "compliance.period.create",
            "compliance_period",
            str(period.id),
            {"code": code, "year": req.year, "overrides": overrides, "vintages": vintages},
        )
        return period_out(ctx, scheme, period)

    return await ctx.db.run(work)


async def update_period_dates(
    ctx: ComplianceContext, who: Identity, period_id: int, req: s.UpdatePeriodDates
) -> s.PeriodOut:
    """Apply the authority's (new or corrected) notice to an open period: event dates and the correction
    window. Time only moves forward for obligations: an event (or window end) that has already come cannot be
    moved, and nothing can be moved to before now, so what was done by a date (a surrender on time, a report)
    keeps the timeliness it had; `note` (why, and the notice's 文号) is required and audited with the change."""
    note = clean_text(req.note, "note", max_len=500, required=True)
    legal_basis = clean_text(req.legal_basis, "legal_basis", max_len=200, required=True)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.PeriodOut:
        period, scheme = await load_period(uow.session, period_id)
        require_authority(who, scheme)
        require_open(period)
        old_calendar = calendar_of(scheme, period)
        old_late_until = period.late_until
        try:
            merged = {
                **json.loads(period.overrides),
                **{cal.EventKind(k).value: v.isoformat() for k, v in req.overrides.items()},
            }
        except ValueError as exc:
            raise InvalidInput("overrides", f"Unknown event kind: {exc}.") from exc
        before = (period.overrides, period.late_until)
        period.overrides = dump_json(merged)
        if req.late_until is not None:
            period.late_until = req.late_until
        try:
            calendar = calendar_of(scheme, period)
        except (ValueError, KeyError) as exc:
            raise InvalidInput("overrides", f"The calendar cannot be built: {exc}") from exc
        deadline = calendar.event(cal.EventKind.SURRENDER_DEADLINE).business_date
        if period.late_until is not None and period.late_until < deadline:
            raise InvalidInput("late_until", "The correction window ends on or after the surrender deadline.")
        _forward_only(old_calendar, calendar, old_late_until, period.late_until, now)
        changes = calendar_changes(old_calendar, calendar, old_late_until, period.late_until)
        uow.audit(
            who.actor,
            "compliance.period.dates",
            "compliance_period",
            str(period.id),
            {
                "before": {"overrides": json.loads(before[0]), "late_until": str(before[1])},
                "overrides": merged,
                "late_until": str(period.late_until),
                "changes": changes,
                "legal_basis": legal_basis,
                "note": note,
            },
        )
        if changes:
            await _notify_calendar_change(uow, period, changes, legal_basis, note)
        return period_out(ctx, scheme, period)

    return await ctx.db.run(work)


async def get_period(ctx: ComplianceContext, who: Identity, period_id: int) -> s.PeriodOut:
    async def work(uow: UnitOfWork) -> s.PeriodOut:
        period, scheme = await load_period(uow.session, period_id)
        return period_out(ctx, scheme, period)

    return await ctx.db.read(work)


async def list_periods(ctx: ComplianceContext, who: Identity) -> list[s.PeriodOut]:
    async def work(uow: UnitOfWork) -> list[s.PeriodOut]:
        rows = (
            await uow.session.execute(
                select(CompliancePeriod, ComplianceScheme)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .order_by(CompliancePeriod.id)
            )
        ).all()
        return [period_out(ctx, sc, p) for p, sc in rows]

    return await ctx.db.read(work)


async def set_reference_price(
    ctx: ComplianceContext, who: Identity, period_id: int, req: s.SetReferencePrice
) -> s.PeriodOut:
    price = parse_money_fen(req.price_yuan, field="price_yuan")
    note = clean_text(req.note, "note", max_len=500, required=False)

    async def work(uow: UnitOfWork) -> s.PeriodOut:
        period, scheme = await load_period(uow.session, period_id)
        require_authority(who, scheme)
        if scheme.kind != "carbon":
            raise InvalidInput("price_yuan", "Only carbon periods price shortfalls by the market.")
        if period.status != "open":
            raise Conflict("period-closed", "The settlement has started; its price is fixed.", field="period_id")
        period.reference_price_fen = price
        period.reference_price_note = note
        period.reference_price_set_by = who.principal_id
        uow.audit(
            who.actor,
            "compliance.period.reference_price",
            "compliance_period",
            str(period.id),
            {"price_fen": price, "note": note},
        )
        return period_out(ctx, scheme, period)

    return await ctx.db.run(work)


async def reference_month(ctx: ComplianceContext, code_or_id: str | int) -> tuple[int, int]:
    """(year, month) of the reference price: the month `reference_price_month_offset` before the deadline's."""

    async def work(uow: UnitOfWork) -> tuple[int, int]:
        if isinstance(code_or_id, int):
            period, scheme = await load_period(uow.session, code_or_id)
        else:
            period, scheme = await load_period_by_code(uow.session, code_or_id)
        return reference_month_of(ctx, scheme, period)

    return await ctx.db.read(work)


def period_out(ctx: ComplianceContext, scheme: ComplianceScheme, period: CompliancePeriod) -> s.PeriodOut:
    deadline = None
    due_before = None
    try:
        event = calendar_of(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE)
        deadline, due_before = event.business_date, event.due_before
    except (KeyError, ValueError):
        pass
    k = period.multiplier_k or 0
    if not k and scheme.kind == "carbon" and deadline is not None:
        try:
            k = int(param(ctx, "carbon_penalty_multiplier_k", deadline))
        except KeyError:
            k = 0  # No default k applies on that day; settling will say so.
    return s.PeriodOut(
        id=period.id or 0,
        scheme_id=scheme.id or 0,
        scheme_code=scheme.code,
        kind=scheme.kind,
        code=period.code,
        year=period.year,
        status=period.status,
        eligible_vintages=json.loads(period.eligible_vintages),
        eligible_offset_vintages=(
            json.loads(period.eligible_offset_vintages) if period.eligible_offset_vintages is not None else None
        ),
        offset_cap_bps=period.offset_cap_bps,
        late_until=period.late_until,
        multiplier_k=k,
        region=period.region,
        reference_price_fen=period.reference_price_fen,
        surrender_deadline=deadline,
        surrender_due_before=due_before,
        created_at=period.created_at,
        settled_at=period.settled_at,
    )


def calendar_changes(
    old: cal.PeriodCalendar, new: cal.PeriodCalendar, old_late_until: dt.date | None, new_late_until: dt.date | None
) -> list[dict[str, str | None]]:
    """What a notice changed, in calendar order: each event whose business date moved (or that appeared or went),
    then the correction window's end; dates as ISO text, None for none."""
    before = {e.kind: e.business_date for e in old.events}
    after = {e.kind: e.business_date for e in new.events}
    out: list[dict[str, str | None]] = []
    for e in new.events:
        was = before.get(e.kind)
        if was != e.business_date:
            out.append({"event": e.kind.value, "before": was.isoformat() if was else None,
                        "after": e.business_date.isoformat()})
    for kind, was in before.items():
        if kind not in after:
            out.append({"event": kind.value, "before": was.isoformat(), "after": None})
    if old_late_until != new_late_until:
        out.append({"event": "late_until", "before": old_late_until.isoformat() if old_late_until else None,
                    "after": new_late_until.isoformat() if new_late_until else None})
    return out


async def _notify_calendar_change(uow: UnitOfWork, period: CompliancePeriod, changes: list[dict[str, str | None]],
                                  legal_basis: str, note: str) -> None:
    """One `compliance.calendar_changed` event to each enterprise with an obligation in the period, written with
    the change (outbox)."""
    rows = (await uow.session.execute(
        select(Obligation.enterprise_id, Enterprise.organisation_id)
        .join(Enterprise, Enterprise.id == Obligation.enterprise_id)  # type: ignore[arg-type]
        .where(Obligation.period_id == period.id)  # type: ignore[arg-type]
        .distinct()
        .order_by(Obligation.enterprise_id)
    )).all()
    for enterprise_id, org_id in rows:
        emit(
            uow.session,
            "compliance.calendar_changed",
            {"period_id": period.id, "period_code": period.code, "enterprise_id": enterprise_id,
             "changes": changes, "legal_basis": legal_basis, "note": note},
            to=(org_id,),
            subject=f"period:{period.id}",
        )


def _forward_only(
    old: cal.PeriodCalendar,
    new: cal.PeriodCalendar,
    old_late_until: dt.date | None,
    new_late_until: dt.date | None,
    now: dt.datetime,
) -> None:
    """Refuse a change that reaches back in time: moving an event that has already come (what was done by it
    was judged against it), or moving one to an instant already past (which would make on-time acts late)."""
    before = {e.kind: e for e in old.events}
    for e in new.events:
        was = before.get(e.kind)
        if was is None or was.business_date == e.business_date:
            continue
        field = f"overrides.{e.kind.value}"
        if was.fires_at <= now:
            raise Conflict(
                "invalid-state",
                f"The {e.kind.value} of {was.business_date.isoformat()} has already come; what was done by it "
                "stands, so a later notice may move only events still to come.",
                field=field,
            )
        if e.fires_at <= now:
            raise InvalidInput(
                field, f"{e.business_date.isoformat()} has passed; an event can only move to a later date."
            )
    if new_late_until != old_late_until:
        today = business_date(now)
        if old_late_until is not None and old_late_until < today:
            raise Conflict("invalid-state", "The correction window has already ended.", field="late_until")
        if new_late_until is not None and new_late_until < today:
            raise InvalidInput("late_until", "The correction window cannot end in the past.")
