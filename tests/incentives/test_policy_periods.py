"""Periods derived from dates: the first-set policy year and the EMC contract's sharing period, on the scalar and
the vector path (anniversaries, 29 February, refusals of inconsistent facts)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from incentives.batch import BatchInputError, evaluate_batch, scalar_frame
from incentives.batch.arith import anniversary_key
from incentives.batch.frames import StrCol
from incentives.batch.programmes_first_set import compensated_table, policy_years
from incentives.domain.arith import date_key
from incentives.domain.facts import FactsError
from incentives.domain.programmes import emc, first_set
from incentives.domain.programmes.common import anniversary
from incentives.domain.rules import evaluate
from incentives.parameters import default_parameters

PARAMS = default_parameters()

FS = {"fs_catalogue_code": "FS2019-01", "fs_first_insured_on": date(2023, 3, 1), "fs_insured_value_fen": 5_000_000_000,
      "fs_premium_rate_bp": 400, "fs_premium_paid_fen": 200_000_000}
EMC = {"emc_project_kind": "emc", "emc_first_revenue_year": 2024, "emc_project_income_fen": 1_000_000_000,
       "emc_contract_years": 5, "emc_company_qualified": True, "emc_sharing_starts_on": date(2024, 1, 1)}


def test_anniversary_keeps_the_day_and_moves_29_february_to_1_march_in_a_common_year():
    assert anniversary(date(2021, 3, 1), 1) == date(2022, 3, 1)
    assert anniversary(date(2024, 2, 29), 1) == date(2025, 3, 1)
    assert anniversary(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert anniversary(date(2024, 2, 28), 1) == date(2025, 2, 28)


def test_policy_year_counts_from_the_first_insurance_day():
    start = date(2021, 3, 1)
    assert [first_set.policy_year(start, d) for d in (
        date(2021, 2, 28), date(2021, 3, 1), date(2022, 2, 28), date(2022, 3, 1), date(2024, 6, 1))] == [0, 1, 1, 2, 4]
    leap = date(2024, 2, 29)
    assert [first_set.policy_year(leap, d) for d in (
        date(2025, 2, 28), date(2025, 3, 1), date(2028, 2, 28), date(2028, 2, 29))] == [1, 2, 4, 5]


def test_vector_dates_agree_with_the_scalar_ones_around_every_month_end_and_leap_day():
    starts = [date(2019, 12, 28) + timedelta(days=i) for i in range(70)]
    starts += [date(2023, 2, 25) + timedelta(days=i) for i in range(10)]
    starts += [date(2024, 2, 25) + timedelta(days=i) for i in range(10)]
    pairs = [(s, s + timedelta(days=k)) for s in starts for k in range(-3, 9 * 366, 7)]
    pairs += [(s, anniversary(s, y) + timedelta(days=k)) for s in starts for y in range(0, 9) for k in (-1, 0, 1)]
    first = np.asarray([date_key(s) for s, _ in pairs], dtype=np.int64)
    on = np.asarray([date_key(d) for _, d in pairs], dtype=np.int64)
    assert policy_years(first, on).tolist() == [first_set.policy_year(s, d) for s, d in pairs]
    for years in (0, 1, 3, 4, 5, 20):
        assert anniversary_key(first, years).tolist() == [date_key(anniversary(s, years)) for s, _ in pairs]


def test_the_list_of_compensated_years_is_text_and_parsed_alike_on_both_paths():
    assert first_set.parse_policy_years(" 1; 2,3 ;") == (frozenset({1, 2, 3}), None)
    assert first_set.parse_policy_years("")[0] == frozenset()
    for bad in ("one", "0", "1;-2", "1.5", "100", "２"):
        assert first_set.parse_policy_years(bad)[1] is not None, bad
    col = StrCol(codes=np.asarray([0, 1, -1, 2]), categories=["1;2", "3", "x"])
    valid, table = compensated_table(col)
    assert valid.tolist() == [True, True, True, False]
    assert table[0, 1] and table[0, 2] and not table[0, 3] and table[1, 3] and not table[-1].any()


def test_a_claimed_policy_year_must_equal_the_derived_one():
    programme = first_set.FS_PROGRAMME
    d = evaluate(programme, {**FS, "fs_policy_year": 2}, PARAMS, date(2024, 6, 30))
    assert d.eligible and d.output("policy_year") == 2
    with pytest.raises(FactsError) as info:
        evaluate(programme, {**FS, "fs_policy_year": 1}, PARAMS, date(2024, 6, 30))
    assert [name for name, _ in info.value.problems] == ["fs_policy_year"]


def test_a_policy_year_already_compensated_is_refused_with_its_gate():
    d = evaluate(first_set.FS_PROGRAMME, {**FS, "fs_compensated_policy_years": "1;2"}, PARAMS, date(2024, 6, 30))
    assert d.failed_gates == ("policy_year_not_compensated",) and d.headline_fen == 0
    gate = next(g for g in d.gates if g.code == "policy_year_not_compensated")
    assert (gate.measured, gate.threshold) == (2, "1;2")
    assert gate.remedy_zh == "第2保险年度已获补偿（已补偿年度：1;2），每个保险年度只补偿一次"


def test_the_sharing_period_ends_an_emc_projects_relief_but_not_an_environmental_ones():
    refused = evaluate(emc.PROGRAMME, EMC, PARAMS, date(2029, 12, 31))
    assert refused.failed_gates == ("within_sharing_period",) and refused.output("project_year") == 6
    gate = next(g for g in refused.gates if g.code == "within_sharing_period")
    assert gate.remedy_zh == "合同约定的节能效益分享期已于2028-12-31结束，2028年以后纳税年度不再享受减免"
    assert evaluate(emc.PROGRAMME, EMC, PARAMS, date(2028, 12, 31)).eligible
    environmental = {**EMC, "emc_project_kind": "environmental", "emc_catalogue_code": "1.1"}
    d = evaluate(emc.PROGRAMME, environmental, PARAMS, date(2029, 12, 31))
    assert d.eligible and "within_sharing_period" not in {g.code for g in d.gates}


def test_sharing_years_round_up_to_whole_years():
    assert emc.sharing_years(date(2024, 1, 1), date(2028, 12, 31)) == 5
    assert emc.sharing_years(date(2024, 1, 1), date(2029, 1, 1)) == 6
    assert emc.sharing_years(date(2024, 1, 1), date(2024, 1, 1)) == 1
    assert emc.sharing_years(date(2024, 2, 29), date(2029, 2, 28)) == 5


@pytest.mark.parametrize(("row", "column"), [
    ({**FS, "fs_policy_year": 1}, "fs_policy_year"),
    ({**FS, "fs_compensated_policy_years": "1 2"}, "fs_compensated_policy_years"),
    ({**EMC, "emc_sharing_ends_on": date(2023, 12, 31)}, "emc_sharing_ends_on"),
    ({**EMC, "emc_sharing_ends_on": date(2029, 1, 1)}, "emc_sharing_ends_on"),
    ({**EMC, "emc_sharing_starts_on": None}, "emc_sharing_starts_on"),
    ({**EMC, "emc_contract_years": 0}, "emc_sharing_ends_on"),
])
def test_inconsistent_period_facts_are_refused_on_both_paths_naming_the_fact(row, column):
    good = {**FS, **EMC}
    frame = [{**good, "on": date(2024, 6, 30)}, {**good, **row, "on": date(2024, 6, 30)}]
    with pytest.raises(BatchInputError, match=column):
        evaluate_batch(frame, PARAMS)
    with pytest.raises(BatchInputError, match=column):
        scalar_frame(frame, PARAMS)


def test_a_batch_csv_carries_the_compensated_years_as_text(tmp_path):
    frame = pd.DataFrame([{**FS, "on": date(2024, 6, 30), "fs_compensated_policy_years": c} for c in ("1;2", "1", "")])
    path = tmp_path / "claims.csv"
    frame.to_csv(path, index=False)
    table = evaluate_batch(path, PARAMS, programmes=["first_set_insurance"])
    assert table["first_set_insurance.failed_gates"].tolist() == ["policy_year_not_compensated", "", ""]
    assert table["first_set_insurance.policy_year"].tolist() == [2, 2, 2]
