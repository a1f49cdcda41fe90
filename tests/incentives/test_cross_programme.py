"""Income relieved by one programme is not relieved again by another in the same evaluation: an HNTE with a §88
project in its half-rate years (国税函〔2010〕157号 第一条第（三）项)."""

from __future__ import annotations

from datetime import date

from incentives import engine
from incentives.batch import evaluate_batch, records_frame, scalar_frame
from incentives.parameters import default_parameters

DAY = date(2024, 12, 31)
HNTE = {
    "sales_revenue_fen": 4_000_000_000, "revenue_3y_fen": 10_000_000_000, "rd_expense_3y_fen": 500_000_000,
    "rd_domestic_3y_fen": 400_000_000, "hightech_revenue_fen": 3_000_000_000, "tech_staff": 20, "staff_total": 100,
    "owns_core_ip": True, "major_incident_in_year": False, "taxable_income_fen": 1_000_000_000,
}
# An environmental project whose first revenue was in 2021: 2024 is project year 4, taxed at 12.5 %.
PROJECT = {"emc_project_kind": "environmental", "emc_catalogue_code": "1.1", "emc_first_revenue_year": 2021,
           "emc_project_income_fen": 400_000_000}


def both(**changes: object) -> dict[str, object]:
    return {**HNTE, **PROJECT, **changes}


def test_project_income_in_its_half_rate_years_is_left_out_of_the_15_percent_saving():
    ev = engine.evaluate_all(both(), DAY)
    project, hnte = ev.get("emc_project"), ev.get("high_tech")
    assert project is not None and hnte is not None
    assert project.eligible and project.output("project_year") == 4
    # The project's 4,000,000 yuan: 25 % = 1,000,000, halved → 500,000 relieved by emc_project.
    assert project.output("tax_saving_fen") == 50_000_000
    # The HNTE rate applies to the other 6,000,000 yuan only: 600,000 saved, not 1,000,000.
    assert hnte.eligible and hnte.output("income_at_hnte_rate_fen") == 600_000_000
    assert hnte.output("tax_saving_fen") == 60_000_000
    assert dict(hnte.inputs)["income_relieved_elsewhere_fen"] == 400_000_000
    assert dict(hnte.findings)["income_relieved_by"] == "emc_project"
    step = next(s for s in hnte.steps if s.code == "income_at_hnte_rate")
    assert step.citation is not None and step.citation.document == "国税函〔2010〕157号"
    # Together the income is relieved once: 500,000 + 600,000, against 500,000 + 1,000,000 before.
    assert ev.total_fen() == 110_000_000


def test_a_project_outside_its_relief_years_leaves_all_income_to_the_hnte_rate():
    ev = engine.evaluate_all(both(emc_first_revenue_year=2017), DAY)  # year 8: no relief
    project, hnte = ev.get("emc_project"), ev.get("high_tech")
    assert project is not None and hnte is not None and not project.eligible
    assert hnte.output("tax_saving_fen") == 100_000_000
    assert "income_relieved_by" not in dict(hnte.findings)


def test_the_engine_figure_replaces_the_callers_when_the_project_is_evaluated_with_it():
    ev = engine.evaluate_all(both(income_relieved_elsewhere_fen=900_000_000), DAY)
    hnte = ev.get("high_tech")
    assert hnte is not None and dict(hnte.inputs)["income_relieved_elsewhere_fen"] == 400_000_000


def test_the_callers_figure_stands_when_the_project_is_evaluated_elsewhere():
    ev = engine.evaluate_all({**HNTE, "income_relieved_elsewhere_fen": 250_000_000}, DAY)
    hnte = ev.get("high_tech")
    assert hnte is not None and hnte.output("tax_saving_fen") == 75_000_000
    alone = engine.evaluate("high_tech", {**HNTE, "income_relieved_elsewhere_fen": 250_000_000}, DAY)
    assert alone.digest() == hnte.digest()  # finance's recomputation of one programme gives the same record


def test_project_income_above_the_taxable_income_leaves_nothing_at_15_percent():
    ev = engine.evaluate_all(both(emc_project_income_fen=1_500_000_000), DAY)
    hnte = ev.get("high_tech")
    assert hnte is not None and hnte.output("income_at_hnte_rate_fen") == 0 and hnte.output("tax_saving_fen") == 0


def test_the_vector_path_leaves_out_the_same_income():
    rows = records_frame([both(), both(emc_first_revenue_year=2017),
                          {**HNTE, "income_relieved_elsewhere_fen": 250_000_000},
                          both(emc_project_income_fen=1_500_000_000), HNTE])
    params = default_parameters()
    vector, scalar = evaluate_batch(rows, params, on=DAY), scalar_frame(rows, params, on=DAY)
    assert vector["high_tech.tax_saving_fen"].tolist() == [60_000_000, 100_000_000, 75_000_000, 0, 100_000_000]
    assert vector["high_tech.tax_saving_fen"].tolist() == scalar["high_tech.tax_saving_fen"].tolist()
    assert vector["high_tech.income_at_hnte_rate_fen"].tolist() == scalar["high_tech.income_at_hnte_rate_fen"].tolist()
