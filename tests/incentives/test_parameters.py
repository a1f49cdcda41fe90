"""The parameter loader and the bitemporal parameter set (incentives/parameters.py, incentives/domain/params.py)."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from incentives.domain.params import NotInForce, ParameterError, Ratio
from incentives.parameters import default_parameters, load_parameters, parse_value

ENTRY = """
rd.extra_deduction_bp:
  kind: int
  unit: bp
  entries:
    - value: 7500
      valid_from: 2021-01-01
      valid_to: null
      published_on: 2021-03-15
      citation: {document: 公告2021年第6号, article: 第一条}
"""


CITATION = "      citation: {document: 公告2021年第6号, article: 第一条}\n"


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_the_shipped_parameters_load():
    params = default_parameters()
    assert "carbon_tool.rate_bp" in params.names()
    assert all(e.citation.document and e.citation.article for e in params.entries())


def test_an_entry_without_a_citation_fails_loading(tmp_path):
    with pytest.raises(ParameterError, match="citation"):
        load_parameters(write(tmp_path, ENTRY.replace(CITATION, "")))


def test_a_citation_without_an_article_fails_loading(tmp_path):
    with pytest.raises(ParameterError, match="article"):
        load_parameters(write(tmp_path, ENTRY.replace("article: 第一条", "article: ''")))


def test_overlapping_validity_published_the_same_day_fails_loading(tmp_path):
    text = ENTRY + """\
    - value: 10000
      valid_from: 2023-01-01
      valid_to: null
      published_on: 2021-03-15
      citation: {document: 公告2023年第7号, article: 第一条}
"""
    with pytest.raises(ParameterError, match="overlap"):
        load_parameters(write(tmp_path, text))


def test_overlap_published_on_different_days_is_a_later_correction_not_an_error(tmp_path):
    text = ENTRY + """\
    - value: 10000
      valid_from: 2023-01-01
      valid_to: null
      published_on: 2023-03-26
      citation: {document: 公告2023年第7号, article: 第一条}
"""
    params = load_parameters(write(tmp_path, text))
    assert params.value("rd.extra_deduction_bp", date(2023, 6, 1)) == 10000
    assert params.value("rd.extra_deduction_bp", date(2023, 6, 1), known_on=date(2023, 3, 25)) == 7500
    assert params.value("rd.extra_deduction_bp", date(2022, 6, 1)) == 7500


def test_a_float_value_fails_loading(tmp_path):
    with pytest.raises(ParameterError, match="float"):
        load_parameters(write(tmp_path, ENTRY.replace("value: 7500", "value: 0.75")))


def test_a_value_of_the_wrong_kind_fails_loading(tmp_path):
    with pytest.raises(ParameterError, match="not of kind int"):
        load_parameters(write(tmp_path, ENTRY.replace("value: 7500", "value: '7500'")))


def test_an_unconfirmed_value_needs_a_note_saying_so(tmp_path):
    text = ENTRY + "      confirmed: false\n      note: a guess\n"
    with pytest.raises(ParameterError, match="not confirmed"):
        load_parameters(write(tmp_path, text))
    fixed = ENTRY + "      confirmed: false\n      note: Not confirmed against an official text.\n"
    assert load_parameters(write(tmp_path, fixed)).history("rd.extra_deduction_bp")[0].confirmed is False


def test_a_parameter_defined_in_two_files_fails_loading(tmp_path):
    write(tmp_path, ENTRY, "a.yaml")
    write(tmp_path, ENTRY, "b.yaml")
    with pytest.raises(ParameterError, match="already defined"):
        load_parameters(tmp_path)


def test_every_problem_is_reported_at_once(tmp_path):
    second = ENTRY.replace("rd.extra_deduction_bp", "rd.intangible_amortisation_bp").replace(CITATION, "")
    text = ENTRY.replace("value: 7500", "value: 0.75") + second
    with pytest.raises(ParameterError) as info:
        load_parameters(write(tmp_path, text))
    problems = " | ".join(info.value.problems)
    assert "rd.extra_deduction_bp" in problems and "float" in problems
    assert "rd.intangible_amortisation_bp" in problems and "citation" in problems


def test_as_the_law_stood_and_as_known_are_separate_questions():
    params = default_parameters()
    # 财税〔2018〕99号 (published 2018-09-20) raised 2018 to 75 % retroactively.
    assert params.value("rd.extra_deduction_bp", on=date(2018, 6, 1)) == 7500
    assert params.value("rd.extra_deduction_bp", on=date(2018, 6, 1), known_on=date(2018, 9, 19)) == 5000
    assert params.value("rd.extra_deduction_bp", on=date(2018, 6, 1), known_on=date(2018, 9, 20)) == 7500
    assert params.value("rd.extra_deduction_bp", on=date(2017, 6, 1)) == 5000


def test_carbon_tool_rate_history():
    params = default_parameters()
    rate = [params.value("carbon_tool.rate_bp", on=d) for d in (
        date(2021, 11, 8), date(2025, 5, 7), date(2025, 5, 8), date(2026, 1, 18), date(2026, 1, 19))]
    assert rate == [175, 175, 150, 150, 125]
    with pytest.raises(NotInForce):
        params.value("carbon_tool.rate_bp", on=date(2021, 11, 7))


def test_configurable_values_of_domain_md_are_flagged_unconfirmed():
    params = default_parameters()
    configurable = ["ru_vat.excluded_credit_grades", "ru_vat.penalty_lookback_months", "ru_vat.minor_penalty_max_fen",
                    "jx_first_set.reward_rate_bp", "jx_first_set.item_cap_fen",
                    "stacking.jx_first_set_reward.excludes", "green_loan.violation_lookback_years"]
    for name in configurable:
        for entry in params.history(name):
            assert entry.confirmed is False, name
            assert "not confirmed against an official text" in entry.note.lower(), name


def test_catalogues_are_marked_as_excerpts():
    params = default_parameters()
    for name in params.names():
        if name.startswith("catalogue."):
            for entry in params.history(name):
                assert "excerpt" in entry.note.lower(), entry.id


def test_ratios_stay_exact():
    assert default_parameters().value("rd.other_costs_cap", date(2024, 1, 1)) == Ratio(10, 90)
    assert parse_value("ratio", {"numerator": 1, "denominator": 3}) == Ratio(1, 3)
    with pytest.raises(ParameterError):
        parse_value("ratio", 0.1)


def test_a_reform_overrides_every_day_and_cites_itself():
    params = default_parameters()
    reformed = params.with_overrides({"carbon_tool.rate_bp": 100}, label="cut")
    assert reformed.value("carbon_tool.rate_bp", date(2022, 1, 1)) == 100
    assert reformed.entry("carbon_tool.rate_bp", date(2022, 1, 1)).citation.document == "reform: cut"
    assert params.value("carbon_tool.rate_bp", date(2022, 1, 1)) == 175


def test_the_digest_names_the_exact_parameter_set():
    params = default_parameters()
    assert params.digest() == load_parameters().digest()
    assert params.with_overrides({"carbon_tool.rate_bp": 100}, label="x").digest() != params.digest()
