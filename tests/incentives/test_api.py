"""The incentives API end to end: a demo enterprise's eligibility with its explanation, the worked examples of
domain.md through the API, stored determinations, the catalogue, parameter history, errors and scoping."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.identity import Role
from tests.conftest import BACKENDS, Env, make_env, schema_database_url
from tests.helpers import enterprise

BASE = "/api/v1/incentives"

# A Jiangxi equipment maker's tax year 2024, money in yuan strings as a person would send it.
DEMO_FACTS: dict[str, Any] = {
    # R&D super deduction: domain.md's worked example.
    "total_revenue_yuan": "100000000.00",
    "rd_core_costs_yuan": "7200000.00",
    "rd_other_costs_yuan": "900000.00",
    # Equipment credit: invoice 1,130,000 incl. 130,000 VAT, CIT payable 60,000.
    "equipment_catalogue_code": "ES-01",
    "equipment_acquired_on": "2024-05-01",
    "equipment_invoice_yuan": "1130000",
    "equipment_deductible_vat_yuan": "130000.00",
    "cit_payable_yuan": "60000.00",
    # First-set insurance: insured 50,000,000 at 4 %, premium 2,000,000 paid; on 2024-12-31 a policy first
    # insured on 2023-03-01 is in its policy year 2 (derived, not typed).
    "fs_catalogue_code": "FS2019-01",
    "fs_first_insured_on": "2023-03-01",
    "fs_insured_value_yuan": "50000000.00",
    "fs_premium_rate_bp": 400,
    "fs_premium_paid_yuan": "2000000.00",
    # High-tech: R&D intensity and S&T staff share both short.
    "sales_revenue_yuan": "40000000.00",
    "revenue_3y_yuan": "100000000.00",
    "rd_expense_3y_yuan": "4200000.00",
    "rd_domestic_3y_yuan": "4000000.00",
    "hightech_revenue_yuan": "30000000.00",
    "tech_staff": 8,
    "staff_total": 100,
    "owns_core_ip": True,
    "taxable_income_yuan": "10000000.00",
    # Green loan for a clinker line above the 基准 level.
    "loan_approved_on": "2024-06-01",
    "green_activity": "industrial_energy_retrofit",
    "loan_principal_yuan": "50000000.00",
    "benchmark_product": "cement_clinker",
    "energy_intensity": 120,
    "industrial_structure_class": "permitted",
    "baseline_emissions_t": 100_000,
    "project_emissions_t": 80_000,
    "co2_method": "GB/T 32150-2015",
}


@pytest.fixture(scope="module", params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """One app and database for the whole module (the tests create their own enterprises and keys): building
    the schema once keeps these API tests quick."""
    e, client = await make_env(schema_database_url(request.param, tmp_path_factory.mktemp("incentives")), build=False)
    try:
        yield e
    finally:
        await client.__aexit__(None, None, None)
        await e.db.dispose()


def by_programme(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["programme"]: d for d in body["determinations"]}


def amount(det: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in det["amounts"] if a["name"] == name)


async def test_demo_enterprise_learns_what_it_qualifies_for_how_much_and_why_not(env) -> None:
    reg = await env.key(Role.REGULATOR)
    ent = await enterprise(env, reg, "江西赣锋装备有限公司")
    r = await env.client.post(f"{BASE}/eligibility", json={
        "enterprise_id": ent["id"], "on": "2024-12-31", "facts": DEMO_FACTS}, headers=env.h(ent["key"]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["enterprise"]["uscc"] == ent["uscc"] and body["enterprise"]["city"] == "南昌"
    assert body["qualifies"] == ["rd_super_deduction", "equipment_credit", "first_set_insurance"]
    assert body["not_qualified"] == ["high_tech", "green_loan"]
    # Programmes without their facts are listed as not evaluated, with the facts they lack.
    skipped = {n["programme"]: n for n in body["not_evaluated"]}
    assert "jx_recognised" in skipped["jx_first_set_reward"]["reason"]
    assert skipped["jx_first_set_reward"]["label_zh"] and skipped["jx_first_set_reward"]["label_en"]

    dets = by_programme(body)
    rd = dets["rd_super_deduction"]
    assert rd["label_zh"] == "研发费用加计扣除" and rd["label_en"]
    assert amount(rd, "extra_deduction_fen") == {
        "name": "extra_deduction_fen", "label_zh": amount(rd, "extra_deduction_fen")["label_zh"],
        "label_en": amount(rd, "extra_deduction_fen")["label_en"], "fen": 800_000_000, "yuan": "8000000.00"}
    assert amount(rd, "other_costs_cap_fen")["yuan"] == "800000.00"
    assert {"document": "财政部 税务总局公告2023年第7号", "article": "第一条"} in rd["articles"]

    eq = dets["equipment_credit"]
    assert (amount(eq, "credit_generated_fen")["yuan"], amount(eq, "credit_used_fen")["yuan"],
            amount(eq, "credit_carried_forward_fen")["yuan"]) == ("100000.00", "60000.00", "40000.00")
    assert eq["headline_fen"] == 6_000_000 and eq["headline_yuan"] == "60000.00"

    fs = dets["first_set_insurance"]
    assert amount(fs, "compensation_fen")["fen"] == 120_000_000
    assert amount(fs, "premium_base_fen")["yuan"] == "1500000.00"
    assert fs["outputs"]["policy_year"] == 2  # derived from the first-insurance day and the day asked

    # Why not: every failed gate, with measured value, threshold, unit, citation, labels and the smallest change.
    ht = dets["high_tech"]
    assert [g["code"] for g in ht["failed_gates"]] == ["rd_intensity", "tech_staff_share"]
    rd_gate = ht["failed_gates"][0]
    assert rd_gate["passed"] is False and rd_gate["unit"] == "bp" and rd_gate["threshold"] == 500
    assert rd_gate["measured"] == 420 and rd_gate["measured_text"] and rd_gate["threshold_text"]
    assert rd_gate["citation"]["document"] and rd_gate["citation"]["article"]
    assert rd_gate["label_zh"] and rd_gate["label_en"]
    assert "5,000,000.00" in rd_gate["remedy_en"] and rd_gate["remedy_zh"]
    assert ht["failed_gates"][1]["remedy_target"] == 10
    green = dets["green_loan"]
    assert [g["code"] for g in green["failed_gates"]] == ["energy_baseline", "energy_advanced"]
    # The energy intensity is an exact decimal: measure, threshold and target as decimal strings of kgce/t.
    energy = green["failed_gates"][0]
    assert (energy["measured"], energy["threshold"], energy["remedy_target"]) == ("120", "117", "117")
    assert energy["measured_text"] == "120 kgce/t" and energy["remedy_en"] == "clinker 120 → 117 kgce/t reaches 基准"
    assert green["headline_fen"] == 0
    # Passing gates are in the trace too, each with its citation.
    assert all(g["citation"]["document"] for d in dets.values() for g in d["gates"])
    assert all(g["passed"] for g in rd["gates"]) and rd["gates"][0]["code"] == "industry_not_excluded"
    assert len([g for g in ht["gates"] if g["passed"]]) >= 3

    # Totals by kind of money to the state: tax expenditure and subsidy are not summed together.
    totals = {t["kind"]: t for t in body["totals"]}
    assert totals["subsidy"] == {"kind": "subsidy", "fen": 120_000_000, "yuan": "1200000.00"}
    assert totals["tax_expenditure"]["fen"] == 200_000_000 + 6_000_000
    # The registry's compliance status was filled in as a fact.
    shortfall = next(f for f in body["registry_facts"] if f["fact"] == "carbon_open_shortfall_t")
    assert (shortfall["value"], shortfall["source"], shortfall["caller_value"], shortfall["as_of"]) == (
        0, "registry.compliance", None, "2024-12-31")


async def test_determinations_are_stored_with_id_and_digest_and_read_back(env) -> None:
    reg = await env.key(Role.REGULATOR)
    ent = await enterprise(env, reg)
    r = await env.client.post(f"{BASE}/eligibility", json={
        "enterprise_id": ent["id"], "on": "2024-12-31", "facts": DEMO_FACTS,
        "programmes": ["rd_super_deduction"]}, headers=env.h(reg))
    assert r.status_code == 201, r.text
    [det] = r.json()["determinations"]
    assert det["verified"] is True and len(det["digest"]) == 64
    # The digest is the SHA-256 of the engine's canonical record, which the answer carries.
    import json

    canonical = json.dumps(det["record"], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == det["digest"]
    assert det["rule_pack_version"] and det["parameter_versions"]
    assert any(v.startswith("rd.extra_deduction_bp@") for v in det["parameter_versions"])

    for key in (reg, ent["key"], await env.key(Role.FINANCE_REVIEWER), await env.key(Role.AUDITOR)):
        got = await env.get(f"{BASE}/determinations/{det['id']}", key)
        assert got.status_code == 200, got.text
        assert got.json()["digest"] == det["digest"] and got.json()["record"] == det["record"]
    # Another enterprise's emitter sees a 404, exactly like a missing id.
    other = await enterprise(env, reg)
    assert (await env.get(f"{BASE}/determinations/{det['id']}", other["key"])).status_code == 404
    missing = await env.get(f"{BASE}/determinations/999999", reg)
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/not-found"
    # Finance verifies a decision letter's code through the service. The digest hashes the content, so an
    # identical determination stored earlier (the demo test's) answers for it too.
    svc = env.app.state.incentives
    found = await svc.determination_by_digest(det["digest"])
    assert found is not None and found.digest == det["digest"] and found.record == det["record"]
    assert await svc.determination_by_digest("0" * 64) is None


async def test_golden_worked_examples_through_the_api(env) -> None:
    fin = await env.key(Role.FINANCE_REVIEWER)
    cases = [
        ("rd_super_deduction", "2024-12-31",
         {"total_revenue_yuan": "100000000", "rd_core_costs_yuan": "7200000", "rd_other_costs_yuan": "900000"},
         {"other_costs_cap_fen": "800000.00", "extra_deduction_fen": "8000000.00"}),
        ("equipment_credit", "2024-12-31",
         {"equipment_catalogue_code": "ES-01", "equipment_acquired_on": "2024-05-01",
          "equipment_invoice_yuan": "1130000", "equipment_deductible_vat_yuan": "130000",
          "cit_payable_yuan": "60000"},
         {"credit_generated_fen": "100000.00", "credit_used_fen": "60000.00",
          "credit_carried_forward_fen": "40000.00"}),
        ("first_set_insurance", "2024-06-30",
         {"fs_catalogue_code": "FS2019-01", "fs_first_insured_on": "2023-03-01", "fs_policy_year": 2,
          "fs_insured_value_yuan": "50000000", "fs_premium_rate_bp": 400, "fs_premium_paid_yuan": "2000000"},
         {"premium_base_fen": "1500000.00", "compensation_fen": "1200000.00"}),
    ]
    for code, day, facts, expected in cases:
        r = await env.client.post(f"{BASE}/eligibility", json={"on": day, "facts": facts, "programmes": [code]},
                                  headers=env.h(fin))
        assert r.status_code == 201, r.text
        [det] = r.json()["determinations"]
        assert det["eligible"] is True and det["failed_gates"] == []
        assert {name: amount(det, name)["yuan"] for name in expected} == expected, code


async def test_fen_integers_and_yuan_strings_give_the_same_determination(env) -> None:
    reg = await env.key(Role.REGULATOR)
    yuan_facts = {"total_revenue_yuan": "100000000.00", "rd_core_costs_yuan": "7200000.01",
                  "rd_other_costs_yuan": "900000"}
    fen_facts = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_001,
                 "rd_other_costs_fen": 90_000_000}
    digests = []
    for facts in (yuan_facts, fen_facts):
        r = await env.client.post(f"{BASE}/eligibility", json={
            "on": "2024-12-31", "facts": facts, "programmes": ["rd_super_deduction"]}, headers=env.h(reg))
        assert r.status_code == 201, r.text
        digests.append(r.json()["determinations"][0]["digest"])
    assert digests[0] == digests[1]


async def test_energy_intensity_takes_an_exact_decimal_string_and_refuses_a_json_float(env) -> None:
    reg = await env.key(Role.REGULATOR)
    green = {k: DEMO_FACTS[k] for k in ("loan_approved_on", "green_activity", "loan_principal_yuan",
                                         "benchmark_product", "industrial_structure_class", "baseline_emissions_t",
                                         "project_emissions_t", "co2_method")}

    async def evaluate(intensity: Any) -> Any:
        return await env.client.post(f"{BASE}/eligibility", json={
            "on": "2024-12-31", "facts": {**green, "energy_intensity": intensity}, "programmes": ["green_loan"]},
            headers=env.h(reg))

    r = await evaluate("99.5")
    assert r.status_code == 201, r.text
    [det] = r.json()["determinations"]
    assert det["eligible"] is True and det["record"]["findings"]["benchmark_status"] == "标杆"
    assert det["record"]["inputs"]["energy_intensity"] == "99.5"
    energy = next(g for g in det["gates"] if g["code"] == "energy_advanced")
    assert (energy["measured"], energy["threshold"], energy["measured_text"]) == ("99.5", "100", "99.5 kgce/t")

    r = await evaluate("100.001")
    assert r.status_code == 201, r.text
    [det] = r.json()["determinations"]
    [failed] = det["failed_gates"]
    assert failed["remedy_en"] == "clinker 100.001 → 100 kgce/t reaches 标杆" and failed["remedy_target"] == "100"

    # A JSON number with a fraction arrives as a binary float: refused, with what to send instead.
    r = await evaluate(99.5)
    assert r.status_code == 422 and r.json()["field"] == "facts.energy_intensity"
    assert '"99.5"' in r.json()["detail"]
    r = await evaluate("99.0005")
    assert r.status_code == 422 and "3 decimals" in r.json()["detail"]


async def test_bad_facts_answer_422_naming_each_fact(env) -> None:
    reg = await env.key(Role.REGULATOR)

    async def evaluate(facts: dict[str, Any], **extra: Any) -> Any:
        return await env.client.post(f"{BASE}/eligibility", json={"on": "2024-12-31", "facts": facts, **extra},
                                     headers=env.h(reg))

    r = await evaluate({"rd_core_costs_yuan": "7200000.001", "total_revenue_yuan": "1,000"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/facts-invalid"
    fields = {p["field"] for p in r.json()["problems"]}
    assert fields == {"facts.rd_core_costs_yuan", "facts.total_revenue_yuan"}
    assert r.json()["field"] == "facts.rd_core_costs_yuan"

    r = await evaluate({"rd_core_cost_yuan": "1"})  # misspelt: never silently ignored
    assert r.status_code == 422 and r.json()["field"] == "facts.rd_core_cost_yuan"

    r = await evaluate({"rd_core_costs_fen": 1.5, "total_revenue_fen": 10})
    assert r.status_code == 422 and r.json()["field"] == "facts.rd_core_costs_fen"
    assert "whole number" in r.json()["detail"]

    r = await evaluate({"rd_core_costs_fen": "720000000", "total_revenue_fen": 10})
    assert r.status_code == 422 and "rd_core_costs_yuan" in r.json()["detail"]

    # A bad value is refused even when no programme reads it today (high-tech lacks its other facts here).
    r = await evaluate({"total_revenue_fen": 10, "rd_core_costs_fen": 1, "tech_staff": "many"})
    assert r.status_code == 422 and r.json()["field"] == "facts.tech_staff"

    r = await evaluate({"rd_core_costs_fen": 1, "rd_core_costs_yuan": "1"})
    assert r.status_code == 422 and r.json()["field"] == "facts.rd_core_costs_yuan"

    # A named programme must be evaluated: its missing facts are listed.
    r = await evaluate({"rd_core_costs_yuan": "7200000"}, programmes=["rd_super_deduction"])
    assert r.status_code == 422 and r.json()["field"] == "facts.total_revenue_fen"
    assert "total_revenue_yuan" in r.json()["detail"]

    # Facts of no programme at all.
    r = await evaluate({"tech_staff": 3})
    assert r.status_code == 422 and r.json()["type"] == "/problems/facts-invalid"

    # A boolean given as text, with the fact named.
    r = await evaluate({**{k: v for k, v in DEMO_FACTS.items() if k.startswith(("sales", "revenue_3y", "rd_",
                                                                              "hightech", "tech", "staff",
                                                                              "taxable"))},
                        "owns_core_ip": "yes"}, programmes=["high_tech"])
    assert r.status_code == 422 and r.json()["field"] == "facts.owns_core_ip"

    r = await evaluate({}, programmes=["no_such_programme"])
    assert r.status_code == 422 and r.json()["field"] == "programmes"

    # A parameter not yet in force on the day asked.
    r = await evaluate({"total_revenue_fen": 10, "rd_core_costs_fen": 1}, programmes=["rd_super_deduction"],
                       on="1990-01-01")
    assert r.status_code == 422 and r.json()["type"] == "/problems/parameter-not-in-force"


async def test_catalogue_labels_and_unknown_programme(env) -> None:
    emitter = (await enterprise(env, await env.key(Role.REGULATOR)))["key"]
    for key in (emitter, await env.key(Role.BANK), await env.key(Role.MEMBER)):
        r = await env.get(f"{BASE}/programmes", key)
        assert r.status_code == 200, r.text
        codes = [p["code"] for p in r.json()]
        assert codes[0] == "rd_super_deduction" and len(codes) == 11
        assert all(p["label_zh"] and p["label_en"] and p["citations"] for p in r.json())
        assert all(g["label_zh"] and g["label_en"] for p in r.json() for g in p["gates"])
    r = await env.get(f"{BASE}/programmes/first_set_insurance?on=2024-06-30", emitter)
    assert r.status_code == 200 and r.json()["label_zh"].startswith("首台")
    r = await env.get(f"{BASE}/programmes/nope", emitter)
    assert r.status_code == 404 and r.json()["type"] == "/problems/unknown-programme"
    facts = {f["name"]: f for f in (await env.get(f"{BASE}/facts", emitter)).json()}
    assert facts["rd_core_costs_fen"]["yuan_alias"] == "rd_core_costs_yuan"
    assert facts["tech_staff"]["yuan_alias"] is None


async def test_parameter_history_is_dated_bitemporal_and_cited(env) -> None:
    key = await env.key(Role.BANK)
    r = await env.get(f"{BASE}/parameters/carbon_tool.rate_bp/history", key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(e["valid_from"], e["value"]) for e in body["entries"]] == [
        ("2021-11-08", 175), ("2025-05-08", 150), ("2026-01-19", 125)]
    assert all(e["published_on"] and e["citation"]["document"] and e["citation"]["article"] for e in body["entries"])
    # The entry in force on a day, as known on a day: before the 2025 cut was published, 1.75 % still stood.
    r = await env.get(f"{BASE}/parameters/carbon_tool.rate_bp/history?on=2025-06-01&known_on=2025-05-01", key)
    assert r.json()["in_force"]["value"] == 175
    r = await env.get(f"{BASE}/parameters/carbon_tool.rate_bp/history?on=2025-06-01", key)
    assert r.json()["in_force"]["value"] == 150
    r = await env.get(f"{BASE}/parameters/no.such/history", key)
    assert r.status_code == 404 and r.json()["type"] == "/problems/unknown-parameter"
    names = [p["name"] for p in (await env.get(f"{BASE}/parameters", key)).json()]
    assert "rd.extra_deduction_bp" in names


async def test_emitter_evaluates_only_its_own_enterprise(env) -> None:
    reg = await env.key(Role.REGULATOR)
    mine, theirs = await enterprise(env, reg), await enterprise(env, reg)
    facts = {"total_revenue_fen": 10, "rd_core_costs_fen": 1}
    r = await env.client.post(f"{BASE}/eligibility", json={"enterprise_id": theirs["id"], "facts": facts},
                              headers=env.h(mine["key"]))
    assert r.status_code == 404
    r = await env.client.post(f"{BASE}/eligibility", json={"facts": facts}, headers=env.h(mine["key"]))
    assert r.status_code == 422 and r.json()["field"] == "enterprise_id"
    r = await env.client.post(f"{BASE}/eligibility", json={"enterprise_id": mine["id"], "facts": facts},
                              headers=env.h(mine["key"]))
    assert r.status_code == 201, r.text
    # Without `on`, the business day in Shanghai is used.
    assert r.json()["on"] == "2026-03-02"


async def test_role_matrix_of_the_incentives_routes(env) -> None:
    keys = {role: await env.key(role) for role in Role}
    facts = {"total_revenue_fen": 10, "rd_core_costs_fen": 1}
    evaluators = {Role.EMITTER, Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.FINANCE_REVIEWER,
                  Role.FINANCE_APPROVER, Role.AUDITOR}
    analysts = evaluators - {Role.EMITTER}
    for role, key in keys.items():
        r = await env.client.post(f"{BASE}/eligibility", json={"on": "2024-12-31", "facts": facts},
                                  headers=env.h(key))
        if role not in evaluators:
            assert r.status_code == 403, role
        elif role == Role.EMITTER:
            assert r.status_code == 422, role  # allowed, but only for its own enterprise
        else:
            assert r.status_code == 201, (role, r.text)
        r = await env.client.post(f"{BASE}/batch", json={"on": "2024-12-31", "records": [facts]},
                                  headers=env.h(key))
        assert r.status_code == (200 if role in analysts else 403), (role, r.text)
        r = await env.client.post(f"{BASE}/reforms", json={
            "overrides": {"rd.extra_deduction_bp": 12000}, "on": "2024-12-31",
            "population": {"records": [facts]}}, headers=env.h(key))
        assert r.status_code == (200 if role in analysts else 403), (role, r.text)
        assert (await env.get(f"{BASE}/programmes", key)).status_code == 200
        assert (await env.get(f"{BASE}/parameters/rd.extra_deduction_bp/history", key)).status_code == 200
        r = await env.get(f"{BASE}/determinations/1", key)
        assert r.status_code == (403 if role not in evaluators else (404 if role == Role.EMITTER else 200)), role
    # The evaluation POSTs move no value: no Idempotency-Key is needed.
    r = await env.client.post(f"{BASE}/eligibility", json={"on": "2024-12-31", "facts": facts},
                              headers={"Authorization": f"Bearer {keys[Role.REGULATOR]}"})
    assert r.status_code == 201, r.text
