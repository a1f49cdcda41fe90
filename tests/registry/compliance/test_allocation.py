"""Allocation tables: four-eyes approval, benchmark and pre-allocation rules, the true-up (a negative one moves
units back), the wait for the calendar date, and a settled shortfall deducted from the next allocation."""

from __future__ import annotations

from tests.helpers import holding
from tests.registry.compliance.kit import (
    BASE,
    allocate_table,
    at,
    authority,
    carbon_lines,
    carbon_world,
    count,
    enterprise,
    issue,
    report,
    settle,
)


async def balance(env, ent, instrument: int) -> int:  # type: ignore[no-untyped-def]
    h = await holding(env, ent["key"], ent["account_id"], instrument)
    return 0 if h is None else int(h["balance_base"])


async def test_pre_allocation_is_70_percent_of_last_years_verified_then_a_negative_true_up_claws_back(env) -> None:
    cw = await carbon_world(env, year=2025)
    ent = await enterprise(env, cw.reg)
    # Last year's verified emissions are given on the line (no 2024 period in this registry).
    table = await allocate_table(cw, [{"enterprise_id": ent["id"], "previous_verified": "1234567"}],
                                 kind="pre_allocation")
    assert table["status"] == "posted" and table["lines"][0]["quantity"] == 864_197  # 864,196.9 rounded half up
    assert table["lines"][0]["inputs"]["ratio"] == "70.00%"
    assert await balance(env, ent, cw.cea) == 864_197
    table = await allocate_table(cw, [{"enterprise_id": ent["id"], "quantity": "850000"}], kind="true_up")
    line = table["lines"][0]
    assert (line["direction"], line["delta"], line["posted"]) == ("reverse", 14_197, 14_197)
    assert await balance(env, ent, cw.cea) == 850_000
    assert await count(env, "SELECT count(*) FROM registry_transaction WHERE code = 'allocation_reversal'") == 1


async def test_a_true_up_reversal_beyond_what_is_held_is_owed_from_the_next_allocation(env) -> None:
    cw = await carbon_world(env, year=2025)
    ent = await enterprise(env, cw.reg)
    await allocate_table(cw, [{"enterprise_id": ent["id"], "previous_verified": "1000"}], kind="pre_allocation")
    await report(cw, ent, carbon_lines(100))
    r = await env.post("/api/v1/surrenders", ent["key"], {"account_id": ent["account_id"], "instrument_id": cw.cea,
                                                         "quantity": "100", "period": cw.code})
    assert r.status_code == 201, r.text
    table = await allocate_table(cw, [{"enterprise_id": ent["id"], "quantity": "0"}], kind="true_up")
    # 700 pre-allocated, final 0: 600 are still held and come back; the other 100 are owed.
    assert (table["lines"][0]["delta"], table["lines"][0]["posted"]) == (700, 600)
    status = await env.app.state.compliance.compliance_status(ent["id"])
    assert [(o["owed"], o["reason"]) for o in status["owed"]] == [(100, "true_up")]


async def test_self_approval_is_four_eyes_required_and_another_authority_cannot_see_the_table(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    table = await allocate_table(cw, [{"enterprise_id": ent["id"], "quantity": "10"}], approve=False)
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key, {"decision": "approve"})
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required"
    other = await authority(env, name="另一个厅")
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", other.key, {"decision": "approve"})
    assert r.status_code == 404
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key2, {"decision": "reject"})
    assert r.status_code == 422 and r.json()["field"] == "reason"  # a rejection says why
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key2,
                       {"decision": "reject", "reason": "产量数据待复核"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert await balance(env, ent, cw.cea) == 0


async def test_a_table_with_bad_lines_lists_them_all_and_saves_nothing(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    prov = await issue(env, cw.reg, {"kind": "cea", "scheme": "provincial", "vintage": 2025, "quantity": "10"})
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key,
                       {"kind": "allocation", "instrument_id": prov, "lines": [{"enterprise_id": ent["id"],
                                                                               "quantity": "1"}]})
    assert r.status_code == 422 and r.json()["field"] == "instrument_id"
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, {
        "kind": "allocation", "instrument_id": cw.cea,
        "lines": [{"enterprise_id": 999_999, "quantity": "1"},
                  {"enterprise_id": ent["id"], "quantity": "1.5"},
                  {"enterprise_id": ent["id"], "quantity": "1"}]})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["lines[0].enterprise_id", "lines[1].quantity",
                                                        "lines[2].enterprise_id"]
    assert await count(env, "SELECT count(*) FROM compliance_allocation_table") == 0


async def test_an_approved_table_waits_for_its_calendar_date_and_the_job_posts_it_once(env) -> None:
    cw = await carbon_world(env, overrides={})  # default dates: allocation on 31 October of the next year
    ent = await enterprise(env, cw.reg)
    table = await allocate_table(cw, [{"enterprise_id": ent["id"], "quantity": "500"}])
    assert table["status"] == "approved" and await balance(env, ent, cw.cea) == 0
    sched = env.app.state.scheduler
    key = f"{cw.code}/allocation"
    events = [e for e in await env.app.state.compliance.scheduled_events() if e.period_key == key]
    assert [(e.job, e.at.isoformat()) for e in events] == [("allocation", "2026-10-31T00:00:00+08:00")]
    assert await sched.catch_up() == 0  # nothing is due yet
    env.clock.set(at("2026-10-31", 0))
    assert await sched.catch_up() >= 1
    assert await balance(env, ent, cw.cea) == 500
    again = await sched.fire("allocation", key)
    assert not again.ran and again.reason == "already done"
    assert await count(env, "SELECT count(*) FROM registry_transaction WHERE code = 'allocation' AND "
                            "request_key LIKE 'compliance:alloc:%'") == 1


async def test_a_settled_shortfall_is_deducted_from_the_next_periods_allocation(env) -> None:
    cw = await carbon_world(env, year=2025)
    ent = await enterprise(env, cw.reg)
    await report(cw, ent, carbon_lines(300))
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "90.00"})
    assert (await settle(cw)).status_code == 200
    r = await env.post(f"{BASE}/periods", cw.reg.key, {"scheme_id": cw.scheme["id"], "year": 2026,
                                                       "overrides": {"allocation": "2027-01-01"}})
    assert r.status_code == 201, r.text
    cea26 = await issue(env, cw.reg, {"kind": "cea", "scheme": "national", "vintage": 2026, "quantity": "1000"})
    next_period = r.json()
    table_body = {"kind": "allocation", "instrument_id": cea26,
                  "lines": [{"enterprise_id": ent["id"], "quantity": "200"}]}
    r = await env.post(f"{BASE}/periods/{next_period['id']}/allocation-tables", cw.reg.key, table_body)
    r = await env.post(f"{BASE}/allocation-tables/{r.json()['id']}/approval", cw.reg.key2, {"decision": "approve"})
    line = r.json()["lines"][0]
    assert (line["quantity"], line["deducted"], line["posted"]) == (200, 200, 0)
    r = await env.post(f"{BASE}/periods/{next_period['id']}/allocation-tables", cw.reg.key,
                       {**table_body, "lines": [{"enterprise_id": ent["id"], "quantity": "250"}]})
    r = await env.post(f"{BASE}/allocation-tables/{r.json()['id']}/approval", cw.reg.key2, {"decision": "approve"})
    line = r.json()["lines"][0]
    assert (line["deducted"], line["posted"]) == (100, 150)
    assert await balance(env, ent, cea26) == 150
    status = await env.app.state.compliance.compliance_status(ent["id"])
    assert status["owed"] == [] and status["carbon_open_shortfall_t"] == 0
