"""The rules engine: determinations, gates, remedies, facts, stacking (incentives/domain/rules.py, facts.py)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from incentives.domain.facts import FACTS, FactsError, normalise
from incentives.domain.programmes import PROGRAMMES, get
from incentives.domain.rules import RULE_PACK_VERSION, evaluate, evaluate_all
from incentives.parameters import default_parameters

PARAMS = default_parameters()
RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}
GREEN = {"loan_approved_on": "2025-10-01", "green_activity": "industrial_energy_retrofit",
         "loan_principal_fen": 10**10, "benchmark_product": "cement_clinker", "energy_intensity": 108,
         "industrial_structure_class": "restricted", "last_major_env_violation_on": "2025-01-01",
         "carbon_open_shortfall_t": 3}
DAY = date(2025, 10, 2)


def test_a_determination_records_inputs_parameters_version_outputs_and_trace():
    d = evaluate(get("rd_super_deduction"), RD, PARAMS, date(2024, 12, 31))
    record = d.to_dict()
    assert record["rule_pack_version"] == RULE_PACK_VERSION
    assert record["inputs"]["rd_core_costs_fen"] == 720_000_000
    assert record["outputs"]["extra_deduction_fen"] == 800_000_000
    used = {p["name"]: p for p in record["parameters"]}
    assert used["rd.extra_deduction_bp"]["value"] == 10000
    assert used["rd.extra_deduction_bp"]["published_on"] == "2023-03-26"
    gate = record["gates"][0]
    assert set(gate) >= {"measured", "threshold", "unit", "passed", "citation", "label_zh", "label_en"}
    assert gate["citation"] == {"document": "国家税务总局公告2015年第97号", "article": "第四条"}
    assert [s["code"] for s in record["steps"]][:2] == ["eligible_core", "other_costs_cap"]


def test_a_determination_is_json_and_deterministic():
    first = evaluate(get("green_loan"), GREEN, PARAMS, DAY)
    second = evaluate(get("green_loan"), dict(reversed(list(GREEN.items()))), PARAMS, DAY)
    assert first.to_json() == second.to_json()
    assert first.digest() == second.digest()
    assert json.loads(first.to_json())["programme"] == "green_loan"


def test_the_digest_changes_with_any_input():
    base = evaluate(get("rd_super_deduction"), RD, PARAMS, date(2024, 12, 31))
    other = evaluate(get("rd_super_deduction"), {**RD, "rd_other_costs_fen": 90_000_001}, PARAMS, date(2024, 12, 31))
    assert base.digest() != other.digest()


def test_every_failed_gate_is_listed_never_only_the_first():
    d = evaluate(get("green_loan"), GREEN, PARAMS, DAY)
    assert d.failed_gates == ("energy_advanced", "not_restricted", "no_major_violation", "carbon_compliant")
    assert not d.eligible
    assert d.output("eligible_principal_fen") == 0


def test_a_failed_numeric_gate_states_the_smallest_change_that_passes():
    d = evaluate(get("green_loan"), GREEN, PARAMS, DAY)
    gate = next(g for g in d.gates if g.code == "energy_advanced")
    assert (gate.measured, gate.threshold, gate.unit) == ("108", "100", "kgce/t")
    assert gate.remedy_en == "clinker 108 → 100 kgce/t reaches 标杆"
    assert gate.remedy_zh == "水泥熟料 108 → 100 kgce/t达到标杆水平"
    assert gate.remedy_target == "100"
    passing = next(g for g in d.gates if g.passed)
    assert passing.remedy_en is None


def test_share_gates_compare_exactly_not_by_rounded_percentages():
    facts = {"sales_revenue_fen": 4_000_000_000, "revenue_3y_fen": 10_000_000_000, "rd_expense_3y_fen": 499_999_999,
             "rd_domestic_3y_fen": 400_000_000, "hightech_revenue_fen": 3_000_000_000, "tech_staff": 20,
             "staff_total": 100, "owns_core_ip": True, "taxable_income_fen": 1_000_000_000}
    d = evaluate(get("high_tech"), facts, PARAMS, date(2024, 12, 31))
    gate = d.gates[0]
    assert gate.code == "rd_intensity" and not gate.passed
    assert gate.measured == 499  # 4.99999999 % shown rounded down, never rounded up to 5 %
    assert gate.remedy_target == 500_000_000


def test_facts_problems_are_all_listed():
    with pytest.raises(FactsError) as info:
        evaluate(get("rd_super_deduction"), {"rd_core_costs_fen": 1.5, "rd_other_costs_fen": -1}, PARAMS, DAY)
    fields = [name for name, _ in info.value.problems]
    assert fields == ["total_revenue_fen", "rd_core_costs_fen", "rd_other_costs_fen"]


def test_money_facts_refuse_floats_and_bools():
    for bad in (100.0, True, "100"):
        with pytest.raises(FactsError):
            normalise(["rd_core_costs_fen"], {"rd_core_costs_fen": bad})


def test_dates_may_be_iso_text_but_not_datetimes():
    from datetime import datetime

    parsed = normalise(["loan_approved_on"], {"loan_approved_on": "2025-10-01"})
    assert parsed == {"loan_approved_on": date(2025, 10, 1)}
    with pytest.raises(FactsError):
        normalise(["loan_approved_on"], {"loan_approved_on": datetime(2025, 10, 1)})


def test_optional_facts_take_their_documented_defaults():
    values = normalise(get("rd_super_deduction").facts, RD)
    assert values["rd_fiscal_funded_core_fen"] == 0
    assert FACTS["rd_fiscal_funded_core_fen"].to_dict()["required"] is False


def test_evaluate_all_skips_programmes_without_their_facts_and_says_why():
    evaluation = evaluate_all(PROGRAMMES, RD, PARAMS, date(2024, 12, 31))
    assert [d.programme for d in evaluation.determinations] == ["rd_super_deduction"]
    skipped = dict(evaluation.skipped)
    assert skipped["high_tech"].startswith("missing facts: sales_revenue_fen")
    assert evaluation.total_fen() == 200_000_000


def test_evaluate_all_reports_a_programme_not_in_force_as_skipped():
    facts = {"loan_principal_fen": 10**10, "carbon_tool_field": "clean_energy", "lender_eligible": True,
             "baseline_emissions_t": 10, "project_emissions_t": 1, "co2_method": "x"}
    evaluation = evaluate_all(PROGRAMMES, facts, PARAMS, date(2021, 11, 7))
    assert evaluation.determinations == ()
    assert "not in force" in dict(evaluation.skipped)["carbon_reduction_tool"]


FIRST_SET = {"fs_catalogue_code": "FS2019-01", "fs_first_insured_on": "2023-03-01",
             "fs_insured_value_fen": 5_000_000_000, "fs_premium_rate_bp": 400, "fs_premium_paid_fen": 200_000_000,
             "jx_recognised": True}


def test_exclusive_programmes_keep_the_larger_amount_once():
    # Insurance compensation 1,200,000 vs Jiangxi reward 10 % of 20,000,000 = 2,000,000: the reward is kept.
    evaluation = evaluate_all(PROGRAMMES, {**FIRST_SET, "jx_item_sales_fen": 2_000_000_000}, PARAMS, date(2024, 6, 30))
    insurance, reward = evaluation.get("first_set_insurance"), evaluation.get("jx_first_set_reward")
    assert insurance.stacked_out_by == "jx_first_set_reward" and insurance.headline_fen == 0
    assert reward.stacked_out_by is None and reward.headline_fen == 200_000_000
    assert evaluation.total_fen() == 200_000_000


def test_exclusive_programmes_tie_goes_to_the_programme_listed_first():
    evaluation = evaluate_all(PROGRAMMES, {**FIRST_SET, "jx_item_sales_fen": 1_200_000_000}, PARAMS, date(2024, 6, 30))
    assert evaluation.get("first_set_insurance").stacked_out_by is None
    assert evaluation.get("jx_first_set_reward").stacked_out_by == "first_set_insurance"


def test_exclusion_is_data_a_reform_can_remove_it():
    params = PARAMS.with_overrides({"stacking.jx_first_set_reward.excludes": ()}, label="stackable")
    evaluation = evaluate_all(PROGRAMMES, {**FIRST_SET, "jx_item_sales_fen": 2_000_000_000}, params, date(2024, 6, 30))
    assert evaluation.get("first_set_insurance").stacked_out_by is None
    assert evaluation.total_fen() == 320_000_000


def test_every_programme_declares_gates_outputs_and_citations():
    for programme in PROGRAMMES:
        described = programme.describe()
        assert described["citations"] and described["gates"] and described["outputs"], programme.code
        assert programme.headline in {o.name for o in programme.outputs}


def test_a_decimal_fact_is_exact_thousandths_and_never_a_float():
    from decimal import Decimal

    names = ["energy_intensity"]
    assert normalise(names, {"energy_intensity": "99.5"}) == {"energy_intensity": 99_500}
    assert normalise(names, {"energy_intensity": " -0.25 "}) == {"energy_intensity": -250}
    assert normalise(names, {"energy_intensity": "100.0010"}) == {"energy_intensity": 100_001}
    assert normalise(names, {"energy_intensity": Decimal("361.8")}) == {"energy_intensity": 361_800}
    assert normalise(names, {"energy_intensity": 117}) == {"energy_intensity": 117_000}
    for bad in (99.5, 100.0, "99.0005", "1e3", "", "NaN", Decimal("NaN"), True, "99,5"):
        with pytest.raises(FactsError, match="energy_intensity"):
            normalise(names, {"energy_intensity": bad})
    # Written back as the exact decimal, so a stored determination re-evaluates to the same facts.
    d = evaluate(get("green_loan"), {**GREEN, "energy_intensity": "108.50"}, PARAMS, DAY)
    assert d.to_dict()["inputs"]["energy_intensity"] == "108.5"
    gate = next(g for g in d.gates if g.code == "energy_advanced")
    assert gate.remedy_en == "clinker 108.5 → 100 kgce/t reaches 标杆"
    assert gate.remedy_zh == "水泥熟料 108.5 → 100 kgce/t达到标杆水平"
