"""Exactly-once job runs: a double fire, two schedulers at once, and a crashed run taken over after its lease."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from scheduler.runs import LEASE_S, JobRuns


async def test_a_job_fired_twice_runs_once(env) -> None:
    runs = JobRuns(env.db, env.clock, "a")
    calls = []

    async def job() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    first = await runs.run("settlement", "p1", job)
    second = await runs.run("settlement", "p1", job)
    assert (first.ran, second.ran, second.reason) == (True, False, "already done")
    assert calls == [1]


async def test_two_schedulers_firing_together_run_once(env) -> None:
    calls = []

    async def job() -> dict[str, int]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return {}

    a, b = JobRuns(env.db, env.clock, "a"), JobRuns(env.db, env.clock, "b")
    out = await asyncio.gather(a.run("settlement", "p2", job), b.run("settlement", "p2", job))
    assert sorted(o.ran for o in out) == [False, True]
    assert calls == [1]


async def test_a_crashed_run_is_taken_over_after_its_lease(env) -> None:
    a, b = JobRuns(env.db, env.clock, "a"), JobRuns(env.db, env.clock, "b")

    async def crash() -> dict[str, int]:
        raise SystemExit("killed half way")

    with pytest.raises(SystemExit):
        # SystemExit is not an Exception: the claim stays "running", as after kill -9.
        await a.run("settlement", "p3", crash)

    async def finish() -> dict[str, str]:
        return {"finished_by": "b"}

    early = await b.run("settlement", "p3", finish)
    assert not early.ran and "running elsewhere" in early.reason
    env.clock.advance(dt.timedelta(seconds=LEASE_S + 1))
    late = await b.run("settlement", "p3", finish)
    assert late.ran and late.reason == "taken over"
    rows = await b.list("settlement")
    assert [(r.status, r.attempts, r.owner) for r in rows if r.period_key == "p3"] == [("done", 2, "b")]


async def test_a_failed_run_can_be_retried(env) -> None:
    runs = JobRuns(env.db, env.clock, "a")

    async def boom() -> dict[str, int]:
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError):
        await runs.run("expiry", "2026-03-02", boom)

    async def ok() -> dict[str, int]:
        return {"ok": 1}

    again = await runs.run("expiry", "2026-03-02", ok)
    assert again.ran and again.result == {"ok": 1}


async def test_the_lease_is_the_schedulers_setting(env) -> None:
    from core.settings import Settings
    from scheduler.runner import Scheduler

    sched = Scheduler({"db": env.db, "clock": env.clock, "settings": Settings(scheduler_lease_s=45)})
    assert sched.runs.lease_s == 45
    claimed, _ = await sched.runs.claim("settlement", "p5", "test")
    assert claimed
    [run] = [r for r in await sched.runs.list("settlement") if r.period_key == "p5"]
    assert run.lease_until == env.clock.now() + dt.timedelta(seconds=45)


async def test_a_fire_kept_out_by_another_owners_lease_is_tried_again_when_the_lease_ends(env) -> None:
    """After a kill -9 the restarted scheduler finds the dead run's lease: it fires again when that lease ends,
    instead of waiting for the next calendar sync (tests/e2e/test_scheduler_process.py runs it as processes)."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from scheduler.runner import RETRY_AFTER_LEASE_S, Scheduler

    dead = JobRuns(env.db, env.clock, "dead", lease_s=60)
    assert (await dead.claim("settlement", "p6", "test"))[0]
    sched = Scheduler({"db": env.db, "clock": env.clock})
    sched.aps = AsyncIOScheduler()
    sched.aps.start()
    try:
        env.clock.advance(dt.timedelta(seconds=20))
        before = dt.datetime.now(dt.UTC)
        await sched._safe_fire("settlement", "p6")
        after = dt.datetime.now(dt.UTC)
        retry = sched.aps.get_job("retry:settlement:p6")
        assert retry is not None and retry.args == ("settlement", "p6")
        wait = dt.timedelta(seconds=40 + RETRY_AFTER_LEASE_S)
        assert before + wait <= retry.next_run_time <= after + wait
        # A run that is done (or one this scheduler ran) schedules nothing more.
        env.clock.advance(dt.timedelta(seconds=41))
        sched.aps.remove_job("retry:settlement:p6")
        out = await sched.runs.run("settlement", "p6", _nothing)
        assert out.ran and out.reason == "taken over"
        sched.retry_after_lease(out)
        await sched._safe_fire("settlement", "p6")
        assert sched.aps.get_job("retry:settlement:p6") is None
    finally:
        sched.aps.shutdown(wait=False)


async def _nothing() -> dict[str, int]:
    return {}
