"""HTTP view of the scheduler: which jobs exist, what ran, and a guarded manual trigger (which goes through the
same claim as a scheduled fire, so triggering a finished job changes nothing)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from core.errors import AppError
from core.http import allow, problem_responses
from core.identity import Identity, Role
from core.schema import CODE_MAX, Code, about
from core.text import clean_text

R = Role


class JobOut(msgspec.Struct, kw_only=True):
    """A scheduled job."""

    name: str
    kind: str
    description: str


class JobRunOut(msgspec.Struct, kw_only=True):
    """One run of a job for one period key."""

    id: int
    job: str
    period_key: str
    status: str
    owner: str
    attempts: int
    trigger: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    result: dict[str, Any]


class TriggerJob(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A scheduled job to run now."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"job": "execute_due_transfers"}

    job: Annotated[Code, about("The job's name (listScheduledJobs).")]
    period_key: (
        Annotated[
            Code, about("The period the run is for (a job runs once per key); the job's current period if omitted.")
        ]
        | None
    ) = None


class TriggerOut(msgspec.Struct, kw_only=True):
    """The outcome of a run triggered now (or why it did not run)."""

    job: str
    period_key: str
    ran: bool
    status: str
    reason: str
    result: dict[str, Any]


class SchedulerController(Controller):
    path = "/api/v1/scheduler"
    tags = ["scheduler"]

    @get(
        "/jobs",
        operation_id="listScheduledJobs",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR)],
        responses=problem_responses(401, 403),
    )
    async def jobs(self, request: Request[Identity, Any, Any]) -> list[JobOut]:
        return [JobOut(**d) for d in request.app.state.scheduler.describe()]

    @get(
        "/runs",
        operation_id="listJobRuns",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR)],
        responses=problem_responses(401, 403, 422),
    )
    async def runs(
        self,
        request: Request[Identity, Any, Any],
        job: Annotated[str | None, Parameter(max_length=CODE_MAX)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[JobRunOut]:
        rows = await request.app.state.scheduler.runs.list(job, limit)
        return [
            JobRunOut(
                id=r.id or 0,
                job=r.job,
                period_key=r.period_key,
                status=r.status,
                owner=r.owner,
                attempts=r.attempts,
                trigger=r.trigger,
                started_at=r.started_at,
                finished_at=r.finished_at,
                result=json.loads(r.result),
            )
            for r in rows
        ]

    @post(
        "/runs",
        operation_id="triggerJob",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY)],
        opt={"idempotent": True},
        status_code=200,
        responses=problem_responses(400, 401, 403, 409, 422),
    )
    async def trigger(self, request: Request[Identity, Any, Any], data: JSONBody[TriggerJob]) -> TriggerOut:
        sched = request.app.state.scheduler
        if data.job not in sched.jobs:
            raise AppError("invalid-input", f"Unknown job; known: {', '.join(sorted(sched.jobs))}.", field="job")
        key = clean_text(data.period_key, "period_key", max_len=64) if data.period_key else None
        out = await sched.fire(data.job, key, trigger="manual")
        return TriggerOut(
            job=out.job, period_key=out.period_key, ran=out.ran, status=out.status, reason=out.reason, result=out.result
        )


CONTROLLERS = [SchedulerController]
