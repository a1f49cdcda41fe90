"""On a sandbox database the scheduler follows simulated time (scheduler/runner.py `drive`): a job that became due
by a clock move runs after it, once, whichever scheduler drives. A notice period (daily job) and a settlement
(calendar job) here; the live variant starts the embedded scheduler and moves the clock from another process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from core.clock import SHANGHAI, FixedClock, SandboxClock, business_date
from core.identity import Identity, Role, create_organisation
from finance.service import SIGNING_KEY_ENV
from registry.compliance import schemas as cs
from scheduler.runner import Scheduler
from tests.conftest import START
from tests.core.test_sandbox_clock import app_env, backend, cli, close, sandbox_url  # noqa: F401
from tests.finance.kit import budget, finance_world
from tests.finance.test_budgets import reviewed_claims

WAIT_S = 60.0  # how long the live test waits for the background scheduler (it should take a few seconds)


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "keys" / "signing-key.pem"))


def fixed_sandbox_clock() -> SandboxClock:
    """A sandbox clock on a fixed base (START, Monday 2 March 2026 10:00 Shanghai), so the slots are exact."""
    return SandboxClock(dt.timedelta(0), base=FixedClock(START))


async def finalised(sched: Scheduler) -> tuple[int, list[str]]:
    rows = await sched.runs.list("finance_finalise_notices")
    assert all(r.status == "done" for r in rows), [(r.period_key, r.status, r.result) for r in rows]
    return sum(json.loads(r.result)["finalised"] for r in rows), sorted(r.period_key for r in rows)


async def test_a_notice_period_ended_by_an_advance_makes_each_approval_final_once(backend: str, tmp_path) -> None:  # noqa: F811
    url = await sandbox_url(backend, tmp_path)
    e = await app_env(url, fixed_sandbox_clock())
    try:
        fw = await finance_world(e, 1)
        await budget(fw, "100000000")
        ids = await reviewed_claims(fw, 2)
        for i in ids:
            r = await e.post(f"/api/v1/finance/claims/{i}/approval", fw.approver, {})
            assert r.status_code == 200 and r.json()["state"] == "in_notice", r.text
            assert r.json()["notice_last_day"] == "2026-03-06"
        sched: Scheduler = e.app.state.scheduler
        other = Scheduler(sched.services)  # a second scheduler process on the same database
        assert await sched.drive() == 0  # nothing due yet in simulated time

        r = await e.post("/api/v1/sandbox/clock", fw.regulator, {"days": 7})
        assert r.status_code == 200 and r.json()["now_shanghai"] == "2026-03-09 10:00:00", r.text
        assert await sched.drive() > 0
        count, keys = await finalised(sched)
        # One slot a simulated day (00:30 Shanghai) from 3 to 9 March; the approvals made final once in all.
        assert keys == [f"2026-03-0{d}" for d in range(3, 10)]
        assert count == len(ids)
        for i in ids:
            claim = (await e.get(f"/api/v1/finance/claims/{i}", fw.auditor)).json()
            assert claim["state"] != "in_notice", claim
        # Driving again, or by the other scheduler over the same window, runs nothing a second time.
        assert await sched.drive() == 0
        assert await other.drive() == 0
        assert (await finalised(sched))[0] == len(ids)
    finally:
        await close(e)


async def test_a_settlement_due_after_an_advance_runs_once(backend: str, tmp_path) -> None:  # noqa: F811
    url = await sandbox_url(backend, tmp_path)
    e = await app_env(url, fixed_sandbox_clock())
    try:
        comp = e.app.state.compliance

        async def org(uow) -> int:  # type: ignore[no-untyped-def]
            return (await create_organisation(uow.session, "生态环境厅", "regulator", e.clock.now())).id or 0

        org_id = await e.db.run(org)
        regulator = await e.key(Role.REGULATOR, org_id)
        reg = Identity(9001, org_id, Role.REGULATOR, "r1")
        scheme = await comp.create_scheme(reg, cs.CreateScheme(code="CN-CEA", name="全国碳市场", kind="carbon",
                                                               cea_scheme="national"))  # fmt: skip
        today = business_date(e.clock.now())
        days = {"pre_allocation": 1, "allocation": 2, "report_due": 5, "verification_due": 10, "surrender_deadline": 20}
        period = await comp.create_period(reg, cs.CreatePeriod(
            scheme_id=scheme.id, year=2025, overrides={k: today + dt.timedelta(days=v) for k, v in days.items()}))
        r = await e.post(f"/api/v1/compliance/periods/{period.id}/reference-price", regulator, {"price_yuan": "60"})
        assert r.status_code == 200, r.text
        [settle] = [ev for ev in await comp.scheduled_events() if ev.job == "settlement"]
        assert settle.at > e.clock.now()

        sched: Scheduler = e.app.state.scheduler
        other = Scheduler(sched.services)
        await sched.drive()
        assert await sched.runs.list("settlement") == []  # not due yet
        to = (settle.at + dt.timedelta(hours=1)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
        r = await e.post("/api/v1/sandbox/clock", regulator, {"to": to})
        assert r.status_code == 200, r.text
        await asyncio.gather(sched.drive(), other.drive())  # two schedulers at once
        await sched.drive()
        runs = await sched.runs.list("settlement")
        assert [(x.period_key, x.status, x.attempts) for x in runs] == [(period.code, "done", 1)], [
            (x.period_key, x.status, x.result) for x in runs
        ]
        # The calendar's earlier events fired on the way, each once.
        for job in ("allocation", "report_reminders", "verification_deadline"):
            rows = await sched.runs.list(job)
            assert rows and all(x.status == "done" and x.attempts == 1 for x in rows), (job, rows)
        got = (await e.get(f"/api/v1/compliance/periods/{period.id}", regulator)).json()
        assert got["status"] == "settled", got
    finally:
        await close(e)


async def test_the_embedded_scheduler_runs_what_a_move_from_another_process_made_due(
    backend: str,  # noqa: F811
    tmp_path,
) -> None:
    """The real path: the app's background re-read sees the CLI's move, and the scheduler's drive fires the daily
    slots of the simulated days passed."""
    from litestar.testing import AsyncTestClient

    from core.settings import Settings
    from server.app import create_app

    url = await sandbox_url(backend, tmp_path)
    app = create_app(Settings(database_url=url, scheduler_embedded=True, api_rate_limit_per_minute=0))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/ready")).json()["sandbox"] is True
        sched: Scheduler = app.state.scheduler
        start = app.state.clock.now()
        run = await asyncio.to_thread(cli, url, "clock", "advance", "--days", "3")
        assert run.returncode == 0, run.stderr
        # The market closes at 15:05 on each simulated day passed; its slot of the third day ahead has come.
        wanted = (business_date(start) + dt.timedelta(days=2)).isoformat()
        deadline = asyncio.get_running_loop().time() + WAIT_S
        keys: list[str] = []
        while wanted not in keys and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            keys = [r.period_key for r in await sched.runs.list("market_close") if r.status == "done"]
        assert wanted in keys, (keys, (await client.get("/health")).json())
        assert len(keys) == len(set(keys))  # each simulated day closed once
    await app.state.db.dispose()
