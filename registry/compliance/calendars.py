"""The compliance calendar as data: a period's dated events (Asia/Shanghai, Chinese working days) and the job
each one fires, and every event of every unsettled period that the scheduler sets its triggers by.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from core.db import UnitOfWork
from core.identity import Identity
from registry.compliance import schemas as s
from registry.compliance._common import calendar_of, param
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceScheme
from registry.compliance.queries import load_period
from registry.domain import calendar as cal

EVENT_JOBS = {
    cal.EventKind.PRE_ALLOCATION: "allocation",
    cal.EventKind.ALLOCATION: "allocation",
    cal.EventKind.TRUE_UP: "allocation",
    cal.EventKind.REPORT_DUE: "report_reminders",
    cal.EventKind.VERIFICATION_DUE: "verification_deadline",
    cal.EventKind.SETTLEMENT: "settlement",
}


@dataclass(frozen=True)
class ScheduledEvent:
    """One calendar event the scheduler fires: `job` for `period_key` at the aware instant `at`."""

    job: str
    period_key: str
    at: dt.datetime
    event: str
    period_id: int


async def period_calendar(ctx: ComplianceContext, who: Identity, period_id: int) -> s.CalendarOut:
    async def work(uow: UnitOfWork) -> s.CalendarOut:
        period, scheme = await load_period(uow.session, period_id)
        calendar = calendar_of(scheme, period)
        return s.CalendarOut(
            period_id=period.id or 0,
            period_code=period.code,
            scheme=scheme.code,
            year=period.year,
            timezone="Asia/Shanghai",
            events=[
                s.CalendarEventOut(
                    kind=e.kind.value,
                    business_date=e.business_date,
                    starts_at=e.starts_at,
                    due_before=e.due_before,
                    fires_at=e.fires_at,
                    is_deadline=e.is_deadline,
                    description=e.description,
                    citation=e.citation,
                    shifted_from=e.shifted_from,
                    overridden=e.overridden,
                    job=EVENT_JOBS.get(e.kind),
                )
                for e in calendar.events
            ],
        )

    return await ctx.db.read(work)


async def scheduled_events(ctx: ComplianceContext) -> list[ScheduledEvent]:
    """Every calendar event of every unsettled period that a job handles, for the scheduler's triggers and
    its catch-up of missed slots. Keys: the period code (allocation events: `<code>/<event>`)."""

    async def work(uow: UnitOfWork) -> list[ScheduledEvent]:
        rows = (
            await uow.session.execute(
                select(CompliancePeriod, ComplianceScheme)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .where(CompliancePeriod.status != "settled")
                .order_by(CompliancePeriod.id)
            )
        ).all()
        out = []
        for period, scheme in rows:
            calendar = calendar_of(scheme, period)
            days = int(param(ctx, "report_reminder_days_before", period.created_at.date()))
            for e in calendar.events:
                job = EVENT_JOBS.get(e.kind)
                if job is None:
                    continue
                key = f"{period.code}/{e.kind.value}" if job == "allocation" else period.code
                at = e.fires_at - dt.timedelta(days=days) if e.kind is cal.EventKind.REPORT_DUE else e.fires_at
                out.append(ScheduledEvent(job, key, at, e.kind.value, period.id or 0))
        return out

    return await ctx.db.read(work)
