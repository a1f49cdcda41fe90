"""Settlement settles every obligation exactly once (reliability.md promise 5, bad-input row 33), whatever fires it:
the job fired twice, two schedulers at once, and a run that dies half way and is taken over after its lease.

Each effect is counted where it lands: settlement rows (unique per period, enterprise, obligation), the audit
chain (`compliance.settle` entries, one per batch, list the obligations settled: each must appear once), forced
surrenders in the ledger (one registry transaction and one ledger transfer each) and deductions owed; then the
ledger invariants and the audit chain are checked.

The in-process variants run on SQLite and PostgreSQL. The process variants (two `sys.executable` scheduler
processes started together; a process SIGKILLed while it stands at the fault point `settlement-after-batch`,
then a new process after the lease) need PostgreSQL: they are skipped on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from core import ledger
from core.audit import link_and_verify
from core.clock import SHANGHAI, SystemClock
from core.db import UnitOfWork
from core.identity import Identity, Role, create_organisation
from registry import schemas as rs
from registry.compliance import schemas as cs
from scheduler import runs
from scheduler.runner import Scheduler
from tests.helpers import make_uscc
from tests.registry.compliance.kit import audited_settlements

REPO = Path(__file__).resolve().parents[2]
N = 16
BATCH = 4
LEASE_S = 10
PROCESS_TIMEOUT_S = 90

SCRIPT = r"""
import asyncio, json, sys

from core.audit import make_flusher
from core.clock import SystemClock
from core.db import Database
from scheduler.runner import Scheduler
from server.services import build_services


async def main() -> None:
    clock = SystemClock()
    db = Database(sys.argv[1])
    db.audit_flusher = make_flusher(clock)
    services = build_services(db, clock)
    services["compliance"].batch_size = int(sys.argv[3])
    out = await Scheduler(services).fire("settlement", sys.argv[2], trigger="test")
    print(json.dumps({"ran": out.ran, "reason": out.reason, "status": out.status}), flush=True)
    await db.dispose()


asyncio.run(main())
"""


@dataclass
class Scenario:
    period_id: int
    code: str
    forced: int
    owed: int


async def scenario(env: Any, deadline: dt.date) -> Scenario:
    """N obligations through the services: a quarter compliant, a quarter short, a quarter not reported and a
    quarter short with a forced surrender ordered from the reserve. The period closed on `deadline`."""
    comp = env.app.state.compliance
    reg_svc = env.app.state.registry

    async def org(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, "生态环境厅", "regulator", env.clock.now())).id or 0

    org_id = await env.db.run(org)
    reg, reg2 = Identity(9001, org_id, Role.REGULATOR, "r1"), Identity(9002, org_id, Role.REGULATOR, "r2")
    verifier = Identity(9003, org_id, Role.VERIFIER, "v")
    env.clock.set(dt.datetime.combine(deadline - dt.timedelta(days=20), dt.time(10), SHANGHAI))
    await reg_svc.open_account(reg, rs.OpenAccount(type="allocation"))
    year = deadline.year - 1
    tx = await reg_svc.issue_units(reg, rs.IssueUnits(kind="cea", scheme="national", vintage=year,
                                                      quantity=str(10 * N * 1000)), None)
    await reg_svc.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
    cea = tx.instrument_id
    scheme = await comp.create_scheme(reg, cs.CreateScheme(code="CN-CEA", name="全国碳市场", kind="carbon",
                                                           cea_scheme="national"))
    today = deadline - dt.timedelta(days=20)
    period = await comp.create_period(reg, cs.CreatePeriod(
        scheme_id=scheme.id, year=year,
        overrides={"allocation": today - dt.timedelta(days=1), "pre_allocation": today - dt.timedelta(days=2),
                   "report_due": today, "verification_due": today, "surrender_deadline": deadline}))
    ents = []
    for i in range(N):
        ent = await reg_svc.create_enterprise(reg, rs.CreateEnterprise(
            uscc=make_uscc(), name=f"企业{i:03d}", city=["南昌", "九江", "赣州"][i % 3], industry_code="D4411"))
        acc = await reg_svc.open_account(reg, rs.OpenAccount(type="holding", enterprise_id=ent.id))
        ents.append((ent, acc, Identity(10_000 + i, ent.organisation_id, Role.EMITTER, f"e{i}")))
    table = await comp.upload_allocation_table(reg, period.id, cs.UploadAllocationTable(
        kind="allocation", instrument_id=cea,
        lines=[cs.AllocationLineIn(enterprise_id=e.id, quantity="600") for e, _, _ in ents]), None)
    assert (await comp.approve_allocation_table(reg2, table.id, cs.Decision(decision="approve"))).status == "posted"
    forced = owed = 0
    for i, (ent, acc, who) in enumerate(ents):
        if i % 4 == 2:
            await comp.register_obligations(reg, period.id, cs.RegisterObligations(enterprise_ids=[ent.id]))
            continue
        rep = await comp.submit_report(reg, period.id, cs.SubmitReport(enterprise_id=ent.id, lines=[
            cs.ReportLine(line_type="electricity", item="purchased", quantity="1000", unit="MWh")]))  # 536.6 → 537 t
        await comp.verify_report(verifier, rep.id, cs.VerifyReport(decision="verify", version=1))
        quantity = 537 if i % 4 == 0 else 300
        await reg_svc.surrender_units(who, rs.SurrenderUnits(account_id=acc.id, instrument_id=cea,
                                                             quantity=str(quantity), period=period.code), None)
        if i % 4 == 3:
            await comp.order_forced_surrender(reg, period.id, cs.OrderForcedSurrender(enterprise_id=ent.id,
                                                                                      quantity="200"))
            forced += 1
        if i % 4 != 0:
            owed += 1
    await comp.fund_reserve(reg, cs.FundReserve(instrument_id=cea, quantity=str(200 * N)), None)
    await comp.set_reference_price(reg, period.id, cs.SetReferencePrice(price_yuan="98.00"))
    env.clock.set(dt.datetime.combine(deadline + dt.timedelta(days=1), dt.time(0, 30), SHANGHAI))
    return Scenario(period.id, period.code, forced, owed)


async def scalar(env: Any, sql: str) -> int:
    async def work(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(text(sql))).scalar_one())

    return await env.db.read(work)  # type: ignore[no-any-return]


async def assert_settled_exactly_once(env: Any, sc: Scenario) -> None:
    assert await scalar(env, "SELECT count(*) FROM compliance_settlement") == N
    assert await scalar(env, "SELECT count(DISTINCT obligation_id) FROM compliance_settlement") == N
    audited = await audited_settlements(env)  # one audit entry per batch, listing the obligations it settled
    assert len(audited) == len(set(audited)) == N
    assert await scalar(env, "SELECT count(*) FROM registry_transaction WHERE code = 'forced_surrender'") == sc.forced
    assert await scalar(env, "SELECT count(*) FROM ledger_transfer WHERE code = 'forced_surrender'") == sc.forced
    assert await scalar(env, "SELECT coalesce(sum(forced_quantity), 0) FROM compliance_settlement") == 200 * sc.forced
    assert await scalar(env, "SELECT count(*) FROM compliance_deduction WHERE reason = 'settlement'") == sc.owed
    assert await scalar(env, "SELECT count(*) FROM audit_entry WHERE action = 'compliance.period.settled'") == 1
    assert await scalar(env, "SELECT count(*) FROM compliance_period WHERE status = 'settled'") == 1
    statuses = await env.app.state.compliance.list_results(
        Identity(1, 1, Role.AUDITOR, "a"), sc.period_id, limit=N)
    assert sorted(x.status for x in statuses.items) == sorted(["A"] * (N // 4) + ["B"] * (N // 2) + ["C"] * (N // 4))

    async def checks(uow: UnitOfWork) -> tuple[list[str], bool]:
        return await ledger.check_invariants(uow.session)

    assert await env.db.read(checks) == []
    assert (await link_and_verify(env.db))[0]


def services_of(env: Any) -> dict[str, Any]:
    return {k: getattr(env.app.state, k) for k in ("db", "clock", "registry", "compliance", "trading")}


async def test_the_settlement_job_fired_twice_settles_every_obligation_once(env) -> None:
    sc = await scenario(env, dt.date(2025, 12, 31))
    env.app.state.compliance.batch_size = BATCH
    sched = Scheduler(services_of(env))
    first, second = await sched.fire("settlement", sc.code), await sched.fire("settlement", sc.code)
    assert (first.ran, second.ran, second.reason) == (True, False, "already done")
    assert first.result["batches"] == N // BATCH
    await assert_settled_exactly_once(env, sc)


async def test_two_schedulers_firing_together_settle_every_obligation_once(env) -> None:
    sc = await scenario(env, dt.date(2025, 12, 31))
    env.app.state.compliance.batch_size = BATCH
    a, b = Scheduler(services_of(env)), Scheduler(services_of(env))
    out = await asyncio.gather(a.fire("settlement", sc.code), b.fire("settlement", sc.code))
    assert sorted(o.ran for o in out) == [False, True]
    await assert_settled_exactly_once(env, sc)


async def test_two_settlements_racing_without_the_claim_still_store_each_result_once(env) -> None:
    """Even past the scheduler's claim (an API call racing the job), the unique key keeps one result each."""
    sc = await scenario(env, dt.date(2025, 12, 31))
    comp = env.app.state.compliance
    comp.batch_size = BATCH
    outs = await asyncio.gather(comp.settle_period(sc.period_id), comp.settle_period(sc.period_id))
    assert sum(o.settled_now for o in outs) == N
    await assert_settled_exactly_once(env, sc)


async def test_a_run_that_dies_half_way_is_taken_over_after_its_lease_and_finishes_once(env, monkeypatch) -> None:
    sc = await scenario(env, dt.date(2025, 12, 31))
    env.app.state.compliance.batch_size = BATCH
    import registry.compliance.settlement as settlement_module

    def die(name: str) -> None:
        # SystemExit is not an Exception: the runner cannot mark the run failed, as after kill -9.
        raise SystemExit(f"killed at {name}")

    monkeypatch.setattr(settlement_module, "fault_point", die)
    crashed = Scheduler(services_of(env))
    with pytest.raises(SystemExit):
        await crashed.fire("settlement", sc.code)
    assert await scalar(env, "SELECT count(*) FROM compliance_settlement") == BATCH
    monkeypatch.undo()
    restarted = Scheduler(services_of(env))
    early = await restarted.fire("settlement", sc.code)
    assert not early.ran and "running elsewhere" in early.reason
    env.clock.advance(dt.timedelta(seconds=runs.LEASE_S + 1))
    late = await restarted.fire("settlement", sc.code)
    assert late.ran and late.reason == "taken over" and late.result["settled_now"] == N - BATCH
    await assert_settled_exactly_once(env, sc)


async def test_a_connection_lost_mid_batch_leaves_nothing_half_written_and_the_next_fire_finishes(env) -> None:
    """Reliability row 34: the batch's forced surrender had posted when the connection died; it rolls back with
    the batch, the job is marked failed, and the next fire settles the rest, each obligation once."""
    from sqlalchemy.exc import DBAPIError

    sc = await scenario(env, dt.date(2025, 12, 31))
    env.app.state.compliance.batch_size = BATCH
    registry = env.app.state.registry
    real_move = registry._move
    calls = []

    async def move_then_lose_the_connection(*args: Any, **kwargs: Any) -> int:
        result = await real_move(*args, **kwargs)
        calls.append(result)
        if len(calls) == 2:  # the second batch's forced surrender, already flushed in its transaction
            raise DBAPIError("INSERT ...", None, Exception("server closed the connection unexpectedly"),
                             connection_invalidated=True)
        return result

    registry._move = move_then_lose_the_connection
    sched = Scheduler(services_of(env))
    try:
        with pytest.raises(Exception, match="connection was lost"):
            await sched.fire("settlement", sc.code)
    finally:
        registry._move = real_move
    assert await scalar(env, "SELECT count(*) FROM compliance_settlement") == BATCH
    assert await scalar(env, "SELECT count(*) FROM registry_transaction WHERE code = 'forced_surrender'") == 1
    assert await scalar(env, "SELECT count(*) FROM scheduler_job_run WHERE status = 'failed'") == 1
    again = await sched.fire("settlement", sc.code)
    assert again.ran and again.result["settled_now"] == N - BATCH
    await assert_settled_exactly_once(env, sc)


# ---------------------------------------------------------------------------------------------- OS processes


def spawn(url: str, code: str, *, fault: str | None = None) -> subprocess.Popen[bytes]:
    # A short lease (GREENRIGHTS_SCHEDULER_LEASE_S) so that the test takes over a killed run in seconds.
    env = {**os.environ, "GREENRIGHTS_SCHEDULER_LEASE_S": str(LEASE_S), "PYTHONUNBUFFERED": "1"}
    env.pop("GREENRIGHTS_FAULT", None)
    if fault is not None:
        env["GREENRIGHTS_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", SCRIPT, url, code, str(BATCH)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outcome(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def past_deadline() -> dt.date:
    """A deadline that has passed by the real clock the scheduler processes read."""
    return dt.datetime.now(SHANGHAI).date() - dt.timedelta(days=3)


async def lease_of(env: Any) -> dt.datetime:
    from scheduler.models import JobRun

    async def work(uow: UnitOfWork) -> dt.datetime:
        run = (await uow.session.execute(select(JobRun).where(JobRun.job == "settlement"))).scalar_one()
        return run.lease_until

    return await env.db.read(work)  # type: ignore[no-any-return]


def require_postgres(env: Any) -> None:
    if env.url.startswith("sqlite"):
        pytest.skip("the OS-process variants run against PostgreSQL (GREENRIGHTS_TEST_DATABASE_URL)")


async def test_two_scheduler_processes_started_together_settle_every_obligation_once(env) -> None:
    require_postgres(env)
    sc = await scenario(env, past_deadline())
    procs = [spawn(env.url, sc.code), spawn(env.url, sc.code)]
    results = [outcome(p) for p in procs]
    assert sorted(r["ran"] for r in results) == [False, True], results
    await assert_settled_exactly_once(env, sc)


async def test_a_scheduler_process_killed_half_way_is_finished_once_by_the_next_after_the_lease(env) -> None:
    require_postgres(env)
    sc = await scenario(env, past_deadline())
    victim = spawn(env.url, sc.code, fault="settlement-after-batch")
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while await scalar(env, "SELECT count(*) FROM compliance_settlement") < BATCH:
        assert victim.poll() is None, victim.communicate()[1].decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the settlement never reached its first batch"
        await asyncio.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert await scalar(env, "SELECT count(*) FROM compliance_settlement") == BATCH  # half way: one batch of N / BATCH
    assert await scalar(env, "SELECT count(*) FROM scheduler_job_run WHERE status = 'running'") == 1
    # While the dead run's lease lasts, nobody takes it over (a probe claims with the real clock, as a process).
    claimed, reason = await runs.JobRuns(env.db, SystemClock(), "probe").claim("settlement", sc.code, "probe")
    assert not claimed and "running elsewhere" in reason
    while await scalar(env, "SELECT count(*) FROM scheduler_job_run WHERE status = 'running'") == 1:
        lease_until = await lease_of(env)
        if lease_until < dt.datetime.now(dt.UTC):
            break
        assert time.monotonic() < deadline, "the lease never ran out"
        await asyncio.sleep(0.2)
    finisher = outcome(spawn(env.url, sc.code))
    assert finisher["ran"] and finisher["reason"] == "taken over", finisher
    await assert_settled_exactly_once(env, sc)
    assert await scalar(env, "SELECT attempts FROM scheduler_job_run WHERE job = 'settlement'") == 2
