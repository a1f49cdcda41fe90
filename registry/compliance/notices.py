"""Compliance notices: the report reminders and verification-overdue notices that the calendar jobs send, one
per enterprise and kind (a second fire sends none), and the list an authority or the enterprise reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, select

from core.db import UnitOfWork
from core.identity import Identity, Role
from registry.compliance import schemas as s
from registry.compliance._common import SYSTEM_ACTOR, calendar_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import ComplianceNotice, ComplianceReport, Obligation
from registry.compliance.queries import load_period, load_period_by_code, own_enterprise
from registry.domain import calendar as cal


async def list_notices(ctx: ComplianceContext, who: Identity, period_id: int) -> list[s.NoticeOut]:
    async def work(uow: UnitOfWork) -> list[s.NoticeOut]:
        ses = uow.session
        await load_period(ses, period_id)
        q = select(ComplianceNotice).where(ComplianceNotice.period_id == period_id)
        if who.role is Role.EMITTER:
            own = await own_enterprise(ses, who)
            q = q.where(ComplianceNotice.enterprise_id == own.id)
        rows = (await ses.execute(q.order_by(ComplianceNotice.id).limit(10_000))).scalars().all()
        return [
            s.NoticeOut(
                id=n.id or 0,
                period_id=n.period_id,
                enterprise_id=n.enterprise_id,
                kind=n.kind,
                message=n.message,
                created_at=n.created_at,
            )
            for n in rows
        ]

    return await ctx.db.read(work)


async def send_report_reminders(ctx: ComplianceContext, period_code: str) -> dict[str, Any]:
    """The `report_reminders` job: one notice to each obligated enterprise that has not reported."""
    return await _notices(ctx, period_code, "report_reminder", reported_ok=True)


async def verification_deadline(ctx: ComplianceContext, period_code: str) -> dict[str, Any]:
    """The `verification_deadline` job: one notice per obligation still without a verified figure."""
    return await _notices(ctx, period_code, "verification_overdue", reported_ok=False)


async def _notices(ctx: ComplianceContext, period_code: str, kind: str, *, reported_ok: bool) -> dict[str, Any]:
    async def work(uow: UnitOfWork) -> dict[str, Any]:
        ses = uow.session
        period, scheme = await load_period_by_code(ses, period_code)
        calendar = calendar_of(scheme, period)
        if reported_ok:
            q = select(Obligation.enterprise_id).where(
                Obligation.period_id == period.id,
                ~exists().where(
                    and_(
                        ComplianceReport.period_id == period.id,
                        ComplianceReport.enterprise_id == Obligation.enterprise_id,
                    )
                ),
            )
            event = (
                calendar.event(cal.EventKind.REPORT_DUE)
                if cal.EventKind.REPORT_DUE in {e.kind for e in calendar.events}
                else None
            )
            due = event.business_date.isoformat() if event else ""
            message = f"{period.code}：请于 {due} 前报送排放（能耗/排污）报告。"
        else:
            q = select(Obligation.enterprise_id).where(
                Obligation.period_id == period.id, Obligation.verified_quantity.is_(None)
            )  # type: ignore[union-attr]
            message = f"{period.code}：核查期限已过，尚无经核查的数据；结算时将按未报告（C）处理。"
        targets = sorted(set((await ses.execute(q)).scalars()))
        have = set(
            (
                await ses.execute(
                    select(ComplianceNotice.enterprise_id).where(
                        ComplianceNotice.period_id == period.id, ComplianceNotice.kind == kind
                    )
                )
            ).scalars()
        )
        now = ctx.clock.now()
        new = [e for e in targets if e not in have]
        for ent_id in new:
            ses.add(
                ComplianceNotice(
                    period_id=period.id or 0, enterprise_id=ent_id, kind=kind, message=message, created_at=now
                )
            )
        if new:
            uow.audit(
                SYSTEM_ACTOR, f"compliance.notice.{kind}", "compliance_period", str(period.id), {"enterprises": new}
            )
        return {"period": period_code, "notices": len(new)}

    return await ctx.db.run(work)
