"""Reform simulation (incentives/whatif.py)."""

from __future__ import annotations

from datetime import date

import pytest

from incentives.batch import synthetic_population
from incentives.domain.params import ParameterError
from incentives.parameters import default_parameters
from incentives.whatif import simulate_reform

PARAMS = default_parameters()
RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}


def test_a_rate_change_is_priced_per_programme_and_city():
    population = [{**RD, "city": "南昌", "on": date(2024, 12, 31)}, {**RD, "city": "赣州", "on": date(2024, 12, 31)},
                  {**RD, "city": "赣州", "on": date(2024, 12, 31)}]
    report = simulate_reform({"rd.extra_deduction_bp": 12000}, population, PARAMS, label="120 %")
    rd = report.by_programme.set_index("programme").loc["rd_super_deduction"]
    # Extra deduction 8,000,000 → 9,600,000 yuan per enterprise; tax saved at 25 %: +400,000 yuan each.
    assert rd["baseline_fen"] == 3 * 200_000_000
    assert rd["difference_fen"] == 3 * 40_000_000
    by_city = report.by_programme_city.query("programme == 'rd_super_deduction'").set_index("city")
    assert by_city.loc["赣州", "difference_fen"] == 80_000_000
    assert by_city.loc["南昌", "difference_fen"] == 40_000_000
    others = report.by_programme.query("programme != 'rd_super_deduction'")
    assert (others["difference_fen"] == 0).all()


def test_city_rows_add_up_to_the_programme_totals():
    population = synthetic_population(1_500, seed=9, params=PARAMS)
    report = simulate_reform({"jx_first_set.reward_rate_bp": 2000, "emc.exempt_years": 4}, population, PARAMS)
    totals = report.by_programme.set_index("programme")
    sums = report.by_programme_city.groupby("programme")[["baseline_fen", "reform_fen", "difference_fen"]].sum()
    for column in ("baseline_fen", "reform_fen", "difference_fen"):
        assert (sums[column] == totals.loc[sums.index, column]).all()
    assert totals.loc["jx_first_set_reward", "difference_fen"] > 0
    assert totals.loc["emc_project", "difference_fen"] > 0


def test_a_reform_from_a_day_leaves_earlier_days_alone():
    population = [{**RD, "on": date(2024, 12, 31)}, {**RD, "on": date(2026, 12, 31)}]
    report = simulate_reform({"rd.extra_deduction_bp": 12000}, population, PARAMS, valid_from=date(2026, 1, 1))
    assert report.by_programme.set_index("programme").loc["rd_super_deduction", "difference_fen"] == 40_000_000


def test_a_reform_value_of_the_wrong_kind_is_refused():
    with pytest.raises(ParameterError):
        simulate_reform({"rd.extra_deduction_bp": 1.2}, [{**RD, "on": date(2024, 12, 31)}], PARAMS)


def test_the_report_is_json_ready():
    report = simulate_reform({"rd.other_costs_cap": {"numerator": 15, "denominator": 85}},
                             [{**RD, "city": "九江", "on": date(2024, 12, 31)}], PARAMS, label="cap 15 %")
    data = report.to_dict()
    assert data["overrides"] == {"rd.other_costs_cap": {"numerator": 15, "denominator": 85}}
    rd = next(r for r in data["by_programme"] if r["programme"] == "rd_super_deduction")
    assert isinstance(rd["difference_fen"], int) and rd["difference_fen"] == 2_500_000
