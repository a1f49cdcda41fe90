"""APScheduler 3.11 wiring: triggers for daily jobs and sweeps, date triggers from the compliance calendars, and
a catch-up of past-due calendar events at start. Every fire goes through `JobRuns.run`, so a double fire or a
second scheduler process has no second effect. A fire skipped because another owner's lease holds the run (a
scheduler that died mid-job, or one still running) is tried again when that lease ends, so a restarted scheduler
takes over a dead run then, not at the next calendar sync.

On a sandbox database (core/sandbox.py) time is simulated: APScheduler's cron and date triggers count real time, so
they would fire at the wrong simulated moment and miss what a clock move jumps over. There the daily and calendar
jobs are driven by `drive`, once a second: it fires, in simulated-time order, every daily slot that fell in
(last drive, simulated now] (keyed by its own Shanghai date) and every calendar event due by now; after a move it
also reloads the calendar and runs each sweep once. Sweeps keep their real-time interval triggers."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import uuid
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.audit import link_pending
from core.clock import SHANGHAI, business_date, is_sandbox, shanghai_time
from core.settings import get_settings
from scheduler.jobs import JobDef, Services, all_jobs
from scheduler.runs import JobRuns, Outcome

AUDIT_LINK_INTERVAL_S = 1
# A run held by another owner's lease is tried again this long after the lease ends.
RETRY_AFTER_LEASE_S = 1
SANDBOX_DRIVE_INTERVAL_S = 1
log = logging.getLogger("greenrights.scheduler")


class Scheduler:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services["db"]
        self.clock = services["clock"]
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        settings = services.get("settings") or get_settings()
        self.runs = JobRuns(self.db, self.clock, self.owner, lease_s=settings.scheduler_lease_s)
        self.jobs = all_jobs()
        self.aps: AsyncIOScheduler | None = None
        self.sandbox = is_sandbox(self.clock)
        # Sandbox: the simulated instant driven up to, the clock offset seen then, and the calendar events known.
        self.events: list[Any] = []
        self.driver: asyncio.Task[None] | None = None
        self.prime()

    def period_key_for(self, job: JobDef) -> str:
        if job.kind == "daily":
            return business_date(self.clock.now()).isoformat()
        return "sweep"

    async def fire(self, name: str, period_key: str | None = None, trigger: str = "schedule") -> Outcome:
        """Run one job for one key through the claim table. Sweeps run without a claim."""
        job = self.jobs[name]
        key = period_key or self.period_key_for(job)
        if job.kind == "sweep":
            result = await job.run(self.services, key)
            return Outcome(name, key, ran=True, status="done", result=result)
        return await self.runs.run(name, key, lambda: job.run(self.services, key), trigger=trigger)

    async def _safe_fire(self, name: str, period_key: str | None = None) -> None:
        try:
            outcome = await self.fire(name, period_key)
            if outcome.ran:
                log.info("job %s[%s] done (%s): %s", name, outcome.period_key, outcome.reason, outcome.result)
            self.retry_after_lease(outcome)
        except Exception:
            log.exception("job %s[%s] failed; the next fire takes it over", name, period_key)

    def retry_after_lease(self, outcome: Outcome) -> None:
        """When another owner's lease kept this fire from running, fire again once that lease has ended: if its owner
        died, this scheduler takes the run over then; if it finished, the retry finds it done."""
        if outcome.ran or outcome.busy_until is None or self.aps is None or not self.aps.running:
            return
        # APScheduler waits on the wall clock; the lease is on the scheduler's clock: wait out what is left of it.
        left = max(outcome.busy_until - self.clock.now(), dt.timedelta(0))
        at = dt.datetime.now(dt.UTC) + left + dt.timedelta(seconds=RETRY_AFTER_LEASE_S)
        self.aps.add_job(
            self._safe_fire,
            DateTrigger(run_date=at),
            args=[outcome.job, outcome.period_key],
            id=f"retry:{outcome.job}:{outcome.period_key}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )
        log.info("job %s[%s] %s; trying again at %s", outcome.job, outcome.period_key, outcome.reason, at.isoformat())

    async def calendar_events(self) -> list[Any]:
        compliance = self.services.get("compliance")
        if compliance is None or not hasattr(compliance, "scheduled_events"):
            return []
        return list(await compliance.scheduled_events())

    async def catch_up(self) -> int:
        """Run every past-due calendar event whose run is not done (a slot missed while nothing ran)."""
        count = 0
        now = self.clock.now()
        for ev in await self.calendar_events():
            if ev.at <= now and ev.job in self.jobs:
                outcome = await self.fire(ev.job, ev.period_key, trigger="catch-up")
                if outcome.ran:
                    log.info("job %s[%s] caught up (%s)", ev.job, ev.period_key, outcome.reason)
                self.retry_after_lease(outcome)
                count += int(outcome.ran)
        return count

    async def sync_calendar(self) -> None:
        """(Re)build date triggers for future calendar events; past ones are caught up. On a sandbox, `drive`
        fires them instead: the events are only reloaded."""
        assert self.aps is not None
        if self.sandbox:
            self.events = await self.calendar_events()
            await self.catch_up()
            return
        now = self.clock.now()
        for ev in await self.calendar_events():
            if ev.job not in self.jobs:
                continue
            job_id = f"cal:{ev.job}:{ev.period_key}"
            if ev.at > now:
                self.aps.add_job(
                    self._safe_fire,
                    DateTrigger(run_date=ev.at),
                    args=[ev.job, ev.period_key],
                    id=job_id,
                    replace_existing=True,
                    misfire_grace_time=None,
                    coalesce=True,
                )
        await self.catch_up()

    def daily_slots(self, after: dt.datetime, until: dt.datetime) -> list[tuple[dt.datetime, str, str]]:
        """(instant, job, Shanghai date) of every daily job's slot in (after, until]."""
        out = []
        first, last = business_date(after), business_date(until)
        for job in self.jobs.values():
            if job.kind != "daily":
                continue
            day = first
            while day <= last:
                at = shanghai_time(day, job.at_hour, job.at_minute)
                if after < at <= until:
                    out.append((at, job.name, day.isoformat()))
                day += dt.timedelta(days=1)
        return out

    async def drive(self) -> int:
        """Sandbox: fire what became due in simulated time since the last drive (see the module docstring).
        Returns how many fires ran."""
        now = self.clock.now()
        offset = getattr(self.clock, "offset", None)
        moved = offset != self.seen_offset
        if moved:
            self.events = await self.calendar_events()
        after = self.driven_to
        due = self.daily_slots(after, now)
        for ev in self.events:
            # After a move every past-due event is offered again (its claim skips one already done).
            if ev.job in self.jobs and (after < ev.at <= now or (moved and ev.at <= now)):
                due.append((ev.at, ev.job, ev.period_key))
        ran = 0
        for _, name, key in sorted(due):
            try:
                outcome = await self.fire(name, key, trigger="sandbox")
                ran += int(outcome.ran)
                if outcome.ran:
                    log.info("job %s[%s] done (sandbox time): %s", name, key, outcome.result)
            except Exception:
                log.exception("job %s[%s] failed; the next fire takes it over", name, key)
        if moved:
            for job in self.jobs.values():
                if job.kind == "sweep":
                    await self._safe_fire(job.name)
        self.driven_to, self.seen_offset = max(now, after), offset
        return ran

    def prime(self) -> None:
        """Sandbox: drive from now on (what was due before is the start's catch-up)."""
        self.driven_to = self.clock.now()
        self.seen_offset = getattr(self.clock, "offset", None)

    async def start(self) -> None:
        self.aps = AsyncIOScheduler(timezone=SHANGHAI)
        self.prime()
        for job in self.jobs.values():
            if job.kind == "daily" and self.sandbox:
                continue  # driven in simulated time by `drive`
            if job.kind == "daily":
                trig: Any = CronTrigger(hour=job.at_hour, minute=job.at_minute, timezone=SHANGHAI)
            elif job.kind == "sweep":
                trig = IntervalTrigger(seconds=job.interval_s)
            else:
                continue
            self.aps.add_job(
                self._safe_fire,
                trig,
                args=[job.name],
                id=f"job:{job.name}",
                replace_existing=True,
                misfire_grace_time=None,
                coalesce=True,
                max_instances=1,
            )
        # The audit linker chains what writers appended (core/audit.py); not a job run: nothing to claim or settle.
        self.aps.add_job(
            self.link_audit,
            IntervalTrigger(seconds=AUDIT_LINK_INTERVAL_S),
            id="audit-link",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        self.aps.add_job(
            self.sync_calendar,
            IntervalTrigger(minutes=5),
            id="sync-calendar",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        self.aps.start()
        try:
            await self.sync_calendar()
        except Exception:
            log.exception("calendar sync failed at start; it is retried every 5 minutes")
        if self.sandbox:
            # Its own loop rather than an interval job: a long catch-up after a big move delays the next look
            # instead of piling up skipped runs.
            self.driver = asyncio.create_task(self._drive_forever())

    async def _drive_forever(self) -> None:
        while True:
            try:
                await self.drive()
            except Exception:
                log.exception("driving the sandbox schedule failed; retried in a second")
            await asyncio.sleep(SANDBOX_DRIVE_INTERVAL_S)

    async def link_audit(self) -> int:
        """Link the committed audit entries not chained yet, and checkpoint the head when one is due; another
        linker winning the race is not an error."""

        checkpoints = self.services.get("audit_checkpoints")

        async def work(uow: Any) -> int:
            linked = await link_pending(uow.session)
            if checkpoints is not None:
                await checkpoints.maybe_write(uow.session, self.clock.now())
            return linked

        try:
            return int(await self.db.run(work))
        except RuntimeError:
            log.info("another process linked the audit chain first")
            return 0

    def shutdown(self) -> None:
        if self.driver is not None:
            self.driver.cancel()
            self.driver = None
        if self.aps is not None and self.aps.running:
            self.aps.shutdown(wait=False)

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": j.name, "kind": j.kind, "description": j.description} for j in self.jobs.values()]
