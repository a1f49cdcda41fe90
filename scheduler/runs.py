"""Claiming and completing job runs (the database side of exactly-once scheduling).

A claim holds a lease (`GREENRIGHTS_SCHEDULER_LEASE_S`, default `LEASE_S`) that nothing renews: a run whose owner
died is taken over by the next claim after the lease, and so is a run still going past it (its items' unique keys
keep that safe, but it is wasted work: keep the lease longer than the longest run)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.clock import Clock
from core.db import Database, UnitOfWork
from core.observability import JOB_RUNS
from scheduler.models import JobRun

LEASE_S = 600


@dataclass(frozen=True)
class Outcome:
    job: str
    period_key: str
    ran: bool
    status: str
    result: dict[str, Any]
    reason: str = ""
    # Skipped because another owner's lease holds the run: when that lease ends (a take-over is possible then).
    busy_until: dt.datetime | None = None


class JobRuns:
    def __init__(self, db: Database, clock: Clock, owner: str, lease_s: int = LEASE_S) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner
        self.lease_s = lease_s

    async def claim(self, job: str, period_key: str, trigger: str) -> tuple[bool, str]:
        """(claimed, reason). Claims a new (job, period), or takes over one whose lease expired or that failed."""
        claimed, reason, _ = await self._claim(job, period_key, trigger)
        return claimed, reason

    async def _claim(self, job: str, period_key: str, trigger: str) -> tuple[bool, str, dt.datetime | None]:
        """`claim`, and the end of the lease that keeps the run from this claimer (None when it is not that)."""
        now = self.clock.now()
        lease = now + dt.timedelta(seconds=self.lease_s)

        async def work(uow: UnitOfWork) -> tuple[bool, str, dt.datetime | None]:
            ses = uow.session
            run = (
                await ses.execute(select(JobRun).where(JobRun.job == job, JobRun.period_key == period_key))
            ).scalar_one_or_none()
            if run is None:
                ses.add(
                    JobRun(
                        job=job,
                        period_key=period_key,
                        status="running",
                        owner=self.owner,
                        lease_until=lease,
                        started_at=now,
                        trigger=trigger,
                    )
                )
                await ses.flush()
                return True, "claimed", None
            if run.status == "done":
                return False, "already done", None
            if run.status == "running" and run.lease_until > now:
                return False, f"running elsewhere ({run.owner}) until {run.lease_until.isoformat()}", run.lease_until
            # Take over a dead or failed run. The condition on the old lease makes two takers race safely.
            taken = await ses.execute(
                update(JobRun)
                .where(JobRun.id == run.id, JobRun.lease_until == run.lease_until, JobRun.status == run.status)
                .values(
                    status="running", owner=self.owner, lease_until=lease, attempts=JobRun.attempts + 1, trigger=trigger
                )
            )
            if taken.rowcount == 1:
                return True, "taken over", None
            return False, "lost the take-over race", None

        try:
            return await self.db.run(work)
        except IntegrityError:
            return False, "claimed concurrently by another scheduler", None

    async def finish(self, job: str, period_key: str, status: str, result: dict[str, Any]) -> None:
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> None:
            await uow.session.execute(
                update(JobRun)
                .where(JobRun.job == job, JobRun.period_key == period_key, JobRun.owner == self.owner)
                .values(
                    status=status,
                    finished_at=now,
                    lease_until=now,
                    result=json.dumps(result, ensure_ascii=False, default=str),
                )
            )

        await self.db.run(work)
        JOB_RUNS.labels(job=job, outcome=status).inc()

    async def run(
        self, job: str, period_key: str, fn: Callable[[], Awaitable[dict[str, Any]]], trigger: str = "schedule"
    ) -> Outcome:
        claimed, reason, busy_until = await self._claim(job, period_key, trigger)
        if not claimed:
            return Outcome(
                job, period_key, ran=False, status="skipped", result={}, reason=reason, busy_until=busy_until
            )
        try:
            result = await fn()
        except Exception as exc:
            await self.finish(job, period_key, "failed", {"error": type(exc).__name__, "detail": str(exc)[:500]})
            raise
        await self.finish(job, period_key, "done", result)
        return Outcome(job, period_key, ran=True, status="done", result=result, reason=reason)

    async def list(self, job: str | None = None, limit: int = 100) -> list[JobRun]:
        async def work(uow: UnitOfWork) -> list[JobRun]:
            q = select(JobRun)
            if job:
                q = q.where(JobRun.job == job)
            return list((await uow.session.execute(q.order_by(JobRun.id.desc()).limit(limit))).scalars().all())

        return await self.db.read(work)
