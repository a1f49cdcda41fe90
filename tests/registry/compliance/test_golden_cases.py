"""Golden compliance cases run through the API and the database, not only the pure rules: the worked fine,
the offset cap reached and exceeded, an ineligible vintage, energy use less retired green certificates, a late
report (C), everyone compliant (A) and a forced surrender from the provincial reserve."""

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


async def test_worked_fine_865300_t_at_98_yuan_times_5_is_423997000_yuan(env) -> None:
    """domain.md §4.4 (Ningxia, 2023 obligations): 865,300 t × 98.00 元 × 5 = 423,997,000 元."""
    cw = await carbon_world(env, year=2023, overrides={"allocation": "2024-10-31", "surrender_deadline": "2024-12-31"})
    ent = await enterprise(env, cw.reg, "宁夏案例企业", "新余", "D4411")
    rep = await report(cw, ent, carbon_lines(865_300))
    assert rep["verified_figure"]["tco2e"] == 865_300
    r = await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key,
                       {"price_yuan": "98.00", "note": "2024年11月全国碳市场挂牌协议成交均价"})
    assert r.status_code == 200, r.text
    r = await settle(cw)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["multiplier_k"], out["reference_price_fen"], out["total_fine_fen"]) == (5, 9800, 42_399_700_000)
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["status"], row["timeliness"], row["shortfall"]) == ("B", "late", 865_300)
    assert row["fine_yuan"] == "423997000.00" and row["fine_formula"] == "865,300 吨 × 98.00 元/吨 × 5"
    assert row["next_allocation_deduction"] == 865_300
    assert "第二十四条" in row["citation"]
    fines = await env.app.state.compliance.list_fines(cw.pid)
    assert [(f.enterprise_id, f.fine_fen) for f in fines] == [(ent["id"], 42_399_700_000)]
    assert fines[0].due_on is not None


async def test_the_market_price_from_trading_wins_over_the_regulators_entry(env) -> None:
    cw = await carbon_world(env, year=2023, overrides={"allocation": "2024-10-31", "surrender_deadline": "2024-12-31"},
                            extra={"multiplier_k": 6})
    ent = await enterprise(env, cw.reg)
    await report(cw, ent, carbon_lines(100))
    asked = []

    def monthly_average_price_fen(*, kind: str, year: int, month: int) -> int:
        asked.append((kind, year, month))
        return 8_888

    env.app.state.trading.monthly_average_price_fen = monthly_average_price_fen
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    r = await settle(cw)
    assert r.status_code == 200, r.text
    assert asked == [("cea", 2024, 11)]  # the month before the deadline's month
    assert r.json()["total_fine_fen"] == 100 * 8_888 * 6
    assert r.json()["price_source"].startswith("trading")


async def test_offsets_reach_the_5_percent_cap_and_one_more_tonne_is_refused(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    ccer = await issue(env, cw.reg, {"kind": "ccer", "project_id": "P001", "vintage": 2021, "quantity": "60000"})
    r = await env.post("/api/v1/allocations", cw.reg.key,
                       {"to_account_id": ent["account_id"], "instrument_id": ccer, "quantity": "60000"})
    assert r.status_code == 201, r.text
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "1000000"})
    await report(cw, ent, carbon_lines(1_000_000))
    r = await surrender(cw, ent, 30_000, ccer)
    assert r.status_code == 201, r.text
    r = await surrender(cw, ent, 20_001, ccer)
    assert r.status_code == 422 and r.json()["type"] == "/problems/offset-cap-exceeded", r.text
    assert r.json()["field"] == "quantity" and r.json()["errors"][0]["cap"] == "50000"
    r = await surrender(cw, ent, 20_000, ccer)  # exactly the cap: 50,000 = 5 % of 1,000,000
    assert r.status_code == 201, r.text
    r = await surrender(cw, ent, 1, ccer)
    assert r.status_code == 422 and r.json()["type"] == "/problems/offset-cap-exceeded", r.text
    assert (await surrender(cw, ent, 950_000)).status_code == 201
    r = await surrender(cw, ent, 1)
    assert r.status_code == 422 and r.json()["type"] == "/problems/surrender-above-obligation", r.text
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "60.00"})
    assert (await settle(cw)).status_code == 200
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["status"], row["surrendered"], row["fine_fen"]) == ("A", 1_000_000, 0)


async def test_an_ineligible_vintage_is_refused_and_nothing_moves(env) -> None:
    cw = await carbon_world(env, vintages=[2025])
    ent = await enterprise(env, cw.reg)
    old = await issue(env, cw.reg, {"kind": "cea", "scheme": "national", "vintage": 2019, "quantity": "500"})
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": old, "quantity": "500"})
    await report(cw, ent, carbon_lines(400))
    before = await count(env, "SELECT count(*) FROM ledger_transfer")
    r = await surrender(cw, ent, 400, old)
    assert r.status_code == 422 and r.json()["type"] == "/problems/vintage-not-eligible", r.text
    assert "2025" in r.json()["detail"]
    assert await count(env, "SELECT count(*) FROM ledger_transfer") == before
    # Units of the wrong scheme (provincial CEA against a national period) are refused too.
    prov = await issue(env, cw.reg, {"kind": "cea", "scheme": "provincial", "vintage": 2025, "quantity": "10"})
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": prov, "quantity": "10"})
    r = await surrender(cw, ent, 10, prov)
    assert r.status_code == 422 and r.json()["type"] == "/problems/instrument-not-eligible", r.text


async def test_surrender_after_the_deadline_is_period_closed_by_the_server_clock(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "100"})
    await report(cw, ent, carbon_lines(100))
    env.clock.set(at("2026-12-31", 23))
    assert (await surrender(cw, ent, 10)).status_code == 201
    env.clock.set(at("2027-01-01", 0))  # 00:00 Shanghai: the exclusive end of 31 December
    r = await surrender(cw, ent, 10)
    assert r.status_code == 409 and r.json()["type"] == "/problems/period-closed", r.text
    assert r.json()["field"] == "period"
    r = await surrender(cw, ent, 10, period="NO-SUCH-2025")
    assert r.status_code == 404 and r.json()["field"] == "period"


async def test_energy_use_obligation_is_verified_energy_less_retired_green_certificates(env) -> None:
    ea = await authority(env, Role.ENERGY_AUTHORITY, "江西省能源局")
    gec_issuer = await authority(env, Role.GEC_ISSUER, "国家可再生能源信息管理中心")
    verifier = await env.key(Role.VERIFIER)
    r = await env.post(f"{BASE}/schemes", ea.key, {"code": "JX-EUR", "name": "江西省用能权", "kind": "energy"})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/periods", ea.key, {"scheme_id": r.json()["id"], "year": 2025, "region": "JX"})
    assert r.status_code == 201, r.text
    period = r.json()
    assert period["surrender_deadline"] == "2026-06-30"
    reg = await authority(env)
    ent = await enterprise(env, reg, "用能企业")
    eur = await issue(env, ea, {"kind": "energy_use", "region": "JX", "vintage": 2025, "quantity": "5000"})
    r = await env.post(f"{BASE}/periods/{period['id']}/allocation-tables", ea.key, {
        "kind": "allocation", "instrument_id": eur, "lines": [{"enterprise_id": ent["id"], "quantity": "4000.000"}]})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/allocation-tables/{r.json()['id']}/approval", ea.key2, {"decision": "approve"})
    assert r.status_code == 200 and r.json()["lines"][0]["posted"] == 4_000_000, r.text
    # 5,000 t raw coal × 0.7143 + 1,200 MWh × 0.3000 kgce/kWh (等价值) = 3,931,500 kgce.
    r = await env.post(f"{BASE}/periods/{period['id']}/reports", ent["key"], {"lines": [
        {"item": "raw_coal", "quantity": "5000", "unit": "t"},
        {"item": "electricity", "quantity": "1200", "unit": "MWh"}]})
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["versions"][-1]["totals"]["kgce"] == 3_931_500
    assert rep["versions"][-1]["totals"]["electricity_basis"] == "equivalent"
    r = await env.post(f"{BASE}/reports/{rep['id']}/verification", verifier, {"decision": "verify", "version": 1})
    assert r.status_code == 200, r.text
    gec = await issue(env, gec_issuer, {"kind": "gec", "technology": "solar", "production_month": "2025-06",
                                        "generator": "JX-PV-01", "quantity": "500"})
    r = await env.post("/api/v1/allocations", gec_issuer.key,
                       {"to_account_id": ent["account_id"], "instrument_id": gec, "quantity": "500"})
    assert r.status_code == 201, r.text
    r = await env.post("/api/v1/retirements", ent["key"], {"account_id": ent["account_id"], "instrument_id": gec,
                                                          "quantity": "500", "beneficiary": "用能企业 绿电消费"})
    assert r.status_code == 201, r.text
    # 3,931,500 − 500 MWh × 300 kgce/MWh = 3,781,500 kgce (3,781.500 tce).
    r = await env.post("/api/v1/surrenders", ent["key"], {"account_id": ent["account_id"], "instrument_id": eur,
                                                         "quantity": "3781.501", "period": period["code"]})
    assert r.status_code == 422 and r.json()["type"] == "/problems/surrender-above-obligation", r.text
    r = await env.post("/api/v1/surrenders", ent["key"], {"account_id": ent["account_id"], "instrument_id": eur,
                                                         "quantity": "3781.500", "period": period["code"]})
    assert r.status_code == 201, r.text
    env.clock.set(at("2026-07-01", 9))
    r = await env.post(f"{BASE}/periods/{period['id']}/settlement", reg.key, {})
    assert r.status_code == 403, r.text  # the regulator does not settle the energy authority's scheme
    r = await env.post(f"{BASE}/periods/{period['id']}/settlement", ea.key, {})
    assert r.status_code == 200, r.text
    r = await env.get(f"{BASE}/periods/{period['id']}/results", ea.key)
    row = r.json()["items"][0]
    assert (row["status"], row["obligation"], row["surrendered"], row["fine_fen"]) == ("A", 3_781_500, 3_781_500, 0)
    assert row["detail"]["energy"]["deduction_kgce"] == 150_000 and row["detail"]["energy"]["gec_mwh_counted"] == 500


async def test_a_late_unverified_report_settles_as_not_reported_c(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    env.clock.set(at("2026-04-01", 9))  # after the 31 March report deadline
    rep = await report(cw, ent, carbon_lines(300), verify=False)
    assert rep["late"] is True and rep["status"] == "submitted"
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert (await settle(cw)).status_code == 200
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["status"], row["timeliness"], row["report_late"], row["obligation"]) == ("C", "late", True, None)
    assert "第二十一条" in row["citation"]


async def test_everyone_compliant_on_time_is_a_with_no_fine_and_no_deduction(env) -> None:
    cw = await carbon_world(env)
    ents = [await enterprise(env, cw.reg, f"企业{i}", city) for i, city in enumerate(["南昌", "九江"])]
    for e, q in zip(ents, [1_200, 300], strict=True):
        await env.post("/api/v1/allocations", cw.reg.key,
                       {"to_account_id": e["account_id"], "instrument_id": cw.cea, "quantity": str(q)})
        await report(cw, e, carbon_lines(q))
        assert (await surrender(cw, e, q)).status_code == 201
    env.clock.set(at("2027-01-01", 8))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    r = await settle(cw)
    assert r.status_code == 200 and r.json()["compliant"] == 2 and r.json()["total_fine_fen"] == 0, r.text
    page = await results(cw)
    assert {(x["status"], x["timeliness"], x["fine_fen"], x["next_allocation_deduction"]) for x in page["items"]} == {
        ("A", "on_time", 0, 0)}
    assert await count(env, "SELECT count(*) FROM compliance_deduction") == 0
    status = await env.app.state.compliance.compliance_status(ents[0]["id"])
    assert status["open_shortfall"] is False and status["latest"][0]["status"] == "A"


async def test_a_forced_surrender_comes_from_the_provincial_reserve_once_and_is_owed_back(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg, "困难企业")
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "400"})
    await report(cw, ent, carbon_lines(1_000))
    assert (await surrender(cw, ent, 400)).status_code == 201
    r = await env.post(f"{BASE}/reserve", cw.reg.key, {"instrument_id": cw.cea, "quantity": "500"})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/periods/{cw.pid}/forced-surrenders", cw.reg.key,
                       {"enterprise_id": ent["id"], "quantity": "600"})
    assert r.status_code == 200 and r.json()["forced_surrender_ordered"] == 600, r.text
    env.clock.set(at("2027-01-02"))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "50.00"})
    r = await settle(cw, dry_run=True)
    assert r.json()["results"][0]["forced_quantity"] == 500  # the reserve holds 500 of the 600 ordered
    assert r.status_code == 200 and await count(env, "SELECT count(*) FROM registry_transaction WHERE "
                                                     "code = 'forced_surrender'") == 0
    r = await settle(cw)
    assert r.status_code == 200, r.text
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["status"], row["forced_quantity"], row["shortfall"], row["reserve_repayment"]) == ("B", 500, 100, 500)
    assert row["fine_fen"] == 100 * 5000 * 5
    assert await count(env, "SELECT count(*) FROM registry_transaction WHERE code = 'forced_surrender'") == 1
    assert await count(env, "SELECT coalesce(sum(quantity), 0) FROM registry_transaction WHERE "
                            "code = 'forced_surrender'") == 500
    owed = (await env.app.state.compliance.compliance_status(ent["id"]))["owed"]
    assert [(o["owed"], o["reason"]) for o in owed] == [(600, "settlement")]
    assert (await settle(cw)).json()["status"] == "already_settled"
    assert await count(env, "SELECT count(*) FROM registry_transaction WHERE code = 'forced_surrender'") == 1
