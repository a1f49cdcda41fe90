"""The compliance calendar's jobs through the scheduler: events come from the period's calendar, each job runs
once per key, a missed slot runs once at the next start, and a job that could not settle is retried."""

from __future__ import annotations

from scheduler.runner import Scheduler
from tests.registry.compliance.kit import (
    BASE,
    at,
    audited_settlements,
    carbon_lines,
    carbon_world,
    count,
    enterprise,
    report,
)


async def test_scheduled_events_follow_the_calendar_in_shanghai_time(env) -> None:
    cw = await carbon_world(env, overrides={})
    events = {(e.job, e.period_key): e.at.isoformat() for e in await env.app.state.compliance.scheduled_events()}
    assert events == {
        ("report_reminders", cw.code): "2026-03-18T00:00:00+08:00",  # 14 days before the end of 31 March
        ("verification_deadline", cw.code): "2026-07-01T00:00:00+08:00",
        ("allocation", f"{cw.code}/pre_allocation"): "2026-09-30T00:00:00+08:00",
        ("allocation", f"{cw.code}/allocation"): "2026-10-31T00:00:00+08:00",
        ("allocation", f"{cw.code}/true_up"): "2026-10-31T00:00:00+08:00",
        ("settlement", cw.code): "2027-01-01T00:00:00+08:00",
    }


async def test_the_settlement_job_fired_twice_settles_each_obligation_once(env) -> None:
    cw = await carbon_world(env)
    ents = [await enterprise(env, cw.reg, f"企业{i}") for i in range(3)]
    for e in ents[:2]:
        await report(cw, e, carbon_lines(100))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    r = await env.post(f"{BASE}/periods/{cw.pid}/obligations", cw.reg.key, {"enterprise_ids": [ents[2]["id"]]})
    assert r.status_code == 200, r.text
    env.clock.set(at("2027-01-01", 0))
    sched = env.app.state.scheduler
    first = await sched.fire("settlement", cw.code)
    second = await sched.fire("settlement", cw.code)
    assert first.ran and first.result["settled_now"] == 3 and first.result["not_reported"] == 1
    assert not second.ran and second.reason == "already done"
    assert await count(env, "SELECT count(*) FROM compliance_settlement") == 3
    audited = await audited_settlements(env)
    assert len(audited) == len(set(audited)) == 3
    assert await count(env, "SELECT count(*) FROM compliance_deduction") == 2
    # A manual call of the service after the job changes nothing either.
    again = await env.app.state.compliance.settle_period(cw.pid)
    assert again.status == "already_settled" and again.settled_now == 0
    assert len(await audited_settlements(env)) == 3


async def test_a_missed_settlement_slot_runs_once_when_the_scheduler_starts_again(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    await report(cw, ent, carbon_lines(10))
    env.app.state.trading.monthly_average_price_fen = lambda *, kind, year, month: 7_000
    env.clock.set(at("2027-02-01"))  # the scheduler was down on 1 January
    services = {k: getattr(env.app.state, k) for k in ("db", "clock", "registry", "compliance", "trading")}
    assert await Scheduler(services).catch_up() >= 1
    assert await Scheduler(services).catch_up() == 0  # a second restart finds every slot done
    assert await count(env, "SELECT count(*) FROM compliance_settlement") == 1
    assert await count(env, "SELECT fine_fen FROM compliance_settlement") == 10 * 7_000 * 5


async def test_a_settlement_without_any_price_fails_and_the_next_fire_finishes_it(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    await report(cw, ent, carbon_lines(10))
    env.clock.set(at("2027-01-01", 0))
    sched = env.app.state.scheduler
    try:
        await sched.fire("settlement", cw.code)
        raise AssertionError("settled without a price")
    except Exception as exc:
        assert "reference-price-missing" in getattr(getattr(exc, "problem", None), "slug", "")
    assert await count(env, "SELECT count(*) FROM compliance_settlement") == 0
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    out = await sched.fire("settlement", cw.code)
    assert out.ran and out.reason == "taken over" and out.result["settled_now"] == 1


async def test_report_reminders_and_verification_notices_go_once_to_each_enterprise(env) -> None:
    cw = await carbon_world(env)
    reported, silent = await enterprise(env, cw.reg, "已报告"), await enterprise(env, cw.reg, "未报告")
    await report(cw, reported, carbon_lines(10), verify=False)
    await env.post(f"{BASE}/periods/{cw.pid}/obligations", cw.reg.key, {"enterprise_ids": [silent["id"]]})
    env.clock.set(at("2026-03-18", 0))
    sched = env.app.state.scheduler
    out = await sched.fire("report_reminders", cw.code)
    assert out.ran and out.result["notices"] == 1
    assert (await env.app.state.compliance.send_report_reminders(cw.code))["notices"] == 0
    env.clock.set(at("2026-07-01", 0))
    out = await sched.fire("verification_deadline", cw.code)
    assert out.result["notices"] == 2  # neither has a verified figure
    r = await env.get(f"{BASE}/periods/{cw.pid}/notices", silent["key"])
    assert r.status_code == 200 and sorted(n["kind"] for n in r.json()) == ["report_reminder", "verification_overdue"]
