"""Periods and their notices: dates moved by a later notice, a correction window that accepts late surrenders,
green-power quotas proven by retired certificates, idempotent uploads, and who may see what."""

from __future__ import annotations

from core.identity import Role
from tests.registry.compliance.kit import (
    BASE,
    at,
    authority,
    by_enterprise,
    carbon_lines,
    carbon_world,
    count,
    enterprise,
    issue,
    report,
    results,
    settle,
    surrender,
)

WHY = {"note": "通知", "legal_basis": "赣环气候〔2026〕1号"}  # why, and under which notice


async def test_a_correction_window_accepts_late_surrenders_which_lower_the_deduction_not_the_fine(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "1000"})
    await report(cw, ent, carbon_lines(1_000))
    assert (await surrender(cw, ent, 600)).status_code == 201
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key,
                       {"late_until": "2027-03-31", "note": "责令限期改正通知", "legal_basis": "赣环气候〔2027〕3号"})
    assert r.status_code == 200 and r.json()["late_until"] == "2027-03-31", r.text
    r = await env.get(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key)
    assert {e["kind"]: e["business_date"] for e in r.json()["events"]}["settlement"] == "2027-04-01"
    env.clock.set(at("2027-02-01"))
    assert (await surrender(cw, ent, 300)).status_code == 201  # late, in the window
    r = await settle(cw)
    assert r.status_code == 409  # the window is still open
    env.clock.set(at("2027-04-01", 0))
    assert (await surrender(cw, ent, 100)).status_code == 409
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "100.00"})
    assert (await settle(cw)).status_code == 200
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["surrendered_on_time"], row["surrendered_late"], row["shortfall_at_deadline"], row["shortfall"]) == (
        600, 300, 400, 100)
    assert row["fine_fen"] == 400 * 10_000 * 5 and row["next_allocation_deduction"] == 100
    assert row["timeliness"] == "late" and row["status"] == "B"


async def test_a_notice_cannot_end_the_window_before_the_deadline_or_change_a_settled_period(env) -> None:
    cw = await carbon_world(env)
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key, {"late_until": "2026-12-30", **WHY})
    assert r.status_code == 422 and r.json()["field"] == "late_until"
    r = await env.post(
        f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key, {"overrides": {"tea_time": "2026-01-01"}, **WHY}
    )
    assert r.status_code == 422 and r.json()["field"] == "overrides"
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "100.00"})
    assert (await settle(cw)).json()["status"] == "settled"
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key, {"late_until": "2027-06-30", **WHY})
    assert r.status_code == 409 and r.json()["type"] == "/problems/period-closed"


async def test_a_calendar_change_cannot_reach_back_in_time(env) -> None:
    """Found by a user: moving a surrender deadline that had passed turned 800,000 t surrendered on time into "late"
    and the fine from 8,336,370.00 to 400,336,370.00 元. Events that have come stay; nothing moves into the past."""
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "1000"})
    await report(cw, ent, carbon_lines(1_000))
    assert (await surrender(cw, ent, 1_000)).status_code == 201
    calendar = f"{BASE}/periods/{cw.pid}/calendar"
    r = await env.post(calendar, cw.reg.key, {"overrides": {"surrender_deadline": "2026-12-31"}})
    assert r.status_code == 422 and r.json()["field"] == "note", r.text  # why, and under which notice
    r = await env.post(calendar, cw.reg.key, {"overrides": {"surrender_deadline": "2026-12-31"}, "note": "x"})
    assert r.status_code == 422 and r.json()["field"] == "legal_basis", r.text
    env.clock.set(at("2026-12-15"))
    r = await env.post(calendar, cw.reg.key, {"overrides": {"surrender_deadline": "2026-12-01"}, **WHY})
    assert r.status_code == 422 and r.json()["field"] == "overrides.surrender_deadline", r.text
    env.clock.set(at("2027-01-02"))
    r = await env.post(calendar, cw.reg.key, {"overrides": {"surrender_deadline": "2027-01-31"}, **WHY})
    assert r.status_code == 409 and r.json()["field"] == "overrides.surrender_deadline", r.text
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "100.00"})
    assert (await settle(cw)).status_code == 200
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["timeliness"], row["fine_fen"], row["status"]) == ("on_time", 0, "A"), row


async def test_a_green_power_quota_is_met_by_certificates_of_the_year_retired_before_the_deadline(env) -> None:
    ea = await authority(env, Role.ENERGY_AUTHORITY, "江西省能源局")
    issuer = await authority(env, Role.GEC_ISSUER, "绿证核发机构")
    reg = await authority(env, Role.REGULATOR)
    r = await env.post(f"{BASE}/schemes", ea.key, {"code": "JX-GP", "name": "绿色电力消费", "kind": "green_power"})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/periods", ea.key, {"scheme_id": r.json()["id"], "year": 2025})
    period = r.json()
    assert period["surrender_deadline"] == "2026-03-31"
    met, short = await enterprise(env, reg, "达标"), await enterprise(env, reg, "未达标")
    r = await env.post(f"{BASE}/periods/{period['id']}/obligations", ea.key,
                       {"enterprise_ids": [met["id"], short["id"]], "quota": "300"})
    assert r.status_code == 200 and {o["verified_quantity"] for o in r.json()} == {300}, r.text
    gec = await issue(env, issuer, {"kind": "gec", "technology": "wind", "production_month": "2025-09",
                                    "generator": "JX-WIND-7", "quantity": "1000"})
    for ent, q in ((met, 300), (short, 120)):
        await env.post("/api/v1/allocations", issuer.key,
                       {"to_account_id": ent["account_id"], "instrument_id": gec, "quantity": str(q)})
        r = await env.post("/api/v1/retirements", ent["key"], {"account_id": ent["account_id"], "instrument_id": gec,
                                                              "quantity": str(q), "beneficiary": ent["name"]})
        assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/periods/{period['id']}/reports", met["key"], {"lines": []})
    assert r.status_code == 422  # no reports in a green-power scheme
    env.clock.set(at("2026-04-01", 1))
    r = await env.post(f"{BASE}/periods/{period['id']}/settlement", ea.key, {})
    assert r.status_code == 200 and (r.json()["compliant"], r.json()["shortfall_count"]) == (1, 1), r.text
    r = await env.get(f"{BASE}/periods/{period['id']}/results", ea.key)
    rows = by_enterprise(r.json())
    assert (rows[short["id"]]["surrendered"], rows[short["id"]]["shortfall"]) == (120, 180)
    assert rows[short["id"]]["kind"] == "green_power" and rows[met["id"]]["status"] == "A"


async def test_a_replayed_table_upload_is_one_table_and_an_emitter_sees_only_its_own_results(env) -> None:
    cw = await carbon_world(env)
    a, b = await enterprise(env, cw.reg, "甲"), await enterprise(env, cw.reg, "乙")
    body = {"kind": "allocation", "instrument_id": cw.cea, "lines": [{"enterprise_id": a["id"], "quantity": "5"}]}
    first = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, body, idem="table-1")
    again = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, body, idem="table-1")
    assert first.status_code == again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert first.json()["id"] == again.json()["id"]
    assert await count(env, "SELECT count(*) FROM compliance_allocation_table") == 1
    for e in (a, b):
        await report(cw, e, carbon_lines(10))
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "1.00"})
    assert (await settle(cw)).status_code == 200
    r = await env.get(f"{BASE}/periods/{cw.pid}/results", a["key"])
    assert r.status_code == 200 and [x["enterprise_id"] for x in r.json()["items"]] == [a["id"]]
    assert (await settle(cw, key=a["key"])).status_code == 403
    other = await authority(env, name="外省生态环境厅")
    assert (await settle(cw, key=other.key)).status_code == 403  # not the scheme's authority


async def test_a_calendar_change_is_sent_to_every_obligated_enterprise_with_its_legal_basis(env) -> None:
    cw = await carbon_world(env)
    ent, other = await enterprise(env, cw.reg), await enterprise(env, cw.reg)
    await report(cw, ent, carbon_lines(1_000))
    await report(cw, other, carbon_lines(500))
    before = {e["kind"]: e["business_date"]
              for e in (await env.get(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key)).json()["events"]}
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key, {
        "overrides": {"surrender_deadline": "2027-01-29"}, "note": "延期至春节前",
        "legal_basis": "赣环气候〔2026〕12号"})
    assert r.status_code == 200, r.text
    for who in (ent, other):
        got = (await env.get("/api/v1/events?type=compliance.calendar_changed", who["key"])).json()
        events = got
        assert len(events) == 1, events
        data = events[0]["data"]
        assert data["enterprise_id"] == who["id"] and data["period_id"] == cw.pid
        assert data["legal_basis"] == "赣环气候〔2026〕12号" and data["note"] == "延期至春节前"
        moved = {c["event"]: (c["before"], c["after"]) for c in data["changes"]}
        assert moved["surrender_deadline"] == (before["surrender_deadline"], "2027-01-29")
    # A notice that moves nothing sends nothing.
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key, {
        "overrides": {"surrender_deadline": "2027-01-29"}, "note": "重申", "legal_basis": "赣环气候〔2026〕12号"})
    assert r.status_code == 200
    got = (await env.get("/api/v1/events?type=compliance.calendar_changed", ent["key"])).json()
    assert len(got) == 1
