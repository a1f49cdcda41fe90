"""Deadline reminders for the outside world: a `compliance.deadline_near` event (core/events.py) to each obligated
enterprise when a period's report or surrender deadline is 30, 7 or 1 days away or fewer, once per deadline and
step (the event's dedupe key), however often the daily job runs. Only the closest step reached is sent: an
enterprise first seen 5 days before a deadline gets the 7-day reminder, not the 30-day one as well.

Report reminders go to enterprises that have not reported; surrender reminders to every obligation of the period
(what remains to surrender is on the enterprise's obligations page).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, exists, select

from core.db import UnitOfWork
from core.events import emit
from registry.compliance._common import calendar_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceReport, ComplianceScheme, Obligation
from registry.domain import calendar as cal
from registry.models import Enterprise

STEPS_DAYS = (1, 7, 30)
WHAT = {cal.EventKind.REPORT_DUE: "report", cal.EventKind.SURRENDER_DEADLINE: "surrender"}


def step_for(days_left: int) -> int | None:
    """The smallest reminder step reached (days_left <= step), or None when the deadline is far or past."""
    if days_left < 0:
        return None
    return next((step for step in STEPS_DAYS if days_left <= step), None)


async def deadline_reminders(ctx: ComplianceContext, today: dt.date) -> dict[str, Any]:
    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        periods = (
            await ses.execute(
                select(CompliancePeriod, ComplianceScheme)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .where(CompliancePeriod.status == "open")
            )
        ).all()
        sent = 0
        for period, scheme in periods:
            calendar = calendar_of(scheme, period)
            kinds = {e.kind for e in calendar.events}
            for kind, what in WHAT.items():
                if kind not in kinds:
                    continue
                deadline = calendar.event(kind).business_date
                days_left = (deadline - today).days
                step = step_for(days_left)
                if step is None:
                    continue
                q = (
                    select(Obligation.enterprise_id, Enterprise.organisation_id)
                    .join(Enterprise, Enterprise.id == Obligation.enterprise_id)
                    .where(Obligation.period_id == period.id)
                    .distinct()
                )
                if kind is cal.EventKind.REPORT_DUE:
                    q = q.where(
                        ~exists().where(
                            and_(
                                ComplianceReport.period_id == period.id,
                                ComplianceReport.enterprise_id == Obligation.enterprise_id,
                            )
                        )
                    )
                for enterprise_id, org_id in (await ses.execute(q.order_by(Obligation.enterprise_id))).all():
                    emit(
                        ses,
                        "compliance.deadline_near",
                        {
                            "period_id": period.id,
                            "enterprise_id": enterprise_id,
                            "deadline": deadline.isoformat(),
                            "days_left": days_left,
                            "what": what,
                        },
                        to=(org_id,),
                        subject=f"period:{period.id}",
                        dedupe_key=f"deadline:{period.id}:{enterprise_id}:{what}:{deadline.isoformat()}:{step}",
                    )
                    sent += 1
        return {"on": today.isoformat(), "considered": sent}

    return await ctx.db.run(work)
