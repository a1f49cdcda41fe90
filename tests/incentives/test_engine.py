"""The public facade other contexts call (incentives/engine.py)."""

from __future__ import annotations

from datetime import date

import pytest

from incentives import engine
from incentives.domain.claims import Claim, claim_key

RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}


def test_list_programmes_gives_every_programme_with_its_exclusions_on_a_day():
    listed = engine.list_programmes(on=date(2024, 6, 30))
    assert [p["code"] for p in listed][:2] == ["rd_super_deduction", "equipment_credit"]
    assert len(listed) == 11
    reward = next(p for p in listed if p["code"] == "jx_first_set_reward")
    assert reward["excludes"] == ["first_set_insurance"]


def test_an_unknown_programme_is_refused():
    with pytest.raises(engine.UnknownProgramme):
        engine.get_programme("perpetual_motion")
    with pytest.raises(engine.UnknownProgramme):
        engine.evaluate("perpetual_motion", {}, date(2024, 1, 1))


def test_evaluate_returns_a_storable_determination():
    d = engine.evaluate("rd_super_deduction", RD, date(2024, 12, 31))
    assert d.output("extra_deduction_fen") == 800_000_000
    assert len(d.digest()) == 64


def test_evaluate_as_known_on_an_earlier_day():
    facts = {"loan_principal_fen": 10**10, "carbon_tool_field": "clean_energy", "lender_eligible": True,
             "baseline_emissions_t": 10, "project_emissions_t": 1, "co2_method": "GB/T 32150"}
    now = engine.evaluate("carbon_reduction_tool", facts, date(2025, 5, 8))
    then = engine.evaluate("carbon_reduction_tool", facts, date(2025, 5, 8), known_on=date(2025, 5, 6))
    assert (now.output("relending_rate_bp"), then.output("relending_rate_bp")) == (150, 175)


def test_evaluate_all_and_evaluate_batch_agree():
    evaluation = engine.evaluate_all(RD, date(2024, 12, 31))
    table = engine.evaluate_batch([RD], on=date(2024, 12, 31))
    assert int(table["rd_super_deduction.tax_saving_fen"].iloc[0]) == evaluation.total_fen() == 200_000_000


def test_simulate_reform_through_the_facade():
    report = engine.simulate_reform({"rd.extra_deduction_bp": 12000}, [{**RD, "on": date(2024, 12, 31)}])
    assert report.to_dict()["by_programme"][0]["difference_fen"] == 40_000_000


def test_parameter_history_lists_every_entry_with_its_citation():
    history = engine.parameter_history("carbon_tool.rate_bp")
    assert [h["value"] for h in history] == [175, 150, 125]
    assert history[1]["valid_from"] == "2025-05-08" and history[1]["published_on"] == "2025-05-07"
    assert all(h["citation"]["document"] for h in history)
    with pytest.raises(engine.ParameterError):
        engine.parameter_history("no.such")
    assert engine.parameter_value("rd.other_costs_cap", date(2024, 1, 1)) == {"numerator": 10, "denominator": 90}


def test_double_claims_use_the_exclusions_in_force_on_the_day():
    key = claim_key("91360100MA35XXXX0X", "P-1", "SN-1")
    claims = [Claim("first_set_insurance", key), Claim("jx_first_set_reward", key)]
    assert len(engine.double_claims(claims, date(2024, 6, 30))) == 1
    assert engine.double_claims(claims, date(2020, 6, 30)) == []


def test_fact_specs_document_every_key():
    specs = {s["name"]: s for s in engine.fact_specs()}
    assert specs["rd_core_costs_fen"]["kind"] == "fen" and specs["rd_core_costs_fen"]["required"] is True
