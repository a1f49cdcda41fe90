"""The vector path (incentives/batch/) against the scalar explain path, to the fen."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import numpy as np
import pandas as pd
import pytest

from incentives.batch import (
    BatchInputError,
    column_docs,
    evaluate_batch,
    read_population,
    scalar_frame,
    synthetic_population,
)
from incentives.parameters import default_parameters

PARAMS = default_parameters()


def assert_same(vector: pd.DataFrame, scalar: pd.DataFrame) -> None:
    assert list(vector.columns) == list(scalar.columns)
    mismatches = {}
    for column in vector.columns:
        left, right = vector[column].astype(object).to_numpy(), scalar[column].astype(object).to_numpy()
        differ = left != right
        if differ.any():
            mismatches[column] = int(differ.sum())
    assert mismatches == {}


def test_vector_and_scalar_paths_agree_on_a_seeded_random_population():
    population = synthetic_population(2_000, seed=20260501, params=PARAMS)
    assert_same(evaluate_batch(population, PARAMS), scalar_frame(population, PARAMS))


def test_the_random_population_exercises_every_gate_both_ways():
    table = evaluate_batch(synthetic_population(2_000, seed=20260501, params=PARAMS), PARAMS)
    from incentives.domain.programmes import PROGRAMMES

    for programme in PROGRAMMES:
        code = programme.code
        evaluated = table[f"{code}.evaluated"]
        assert evaluated.any() and not evaluated.all(), code
        assert table[f"{code}.eligible"].any(), code
        failed = set(";".join(table[f"{code}.failed_gates"]).split(";")) - {""}
        assert failed == set(programme.gate_codes), code
    assert table["jx_first_set_reward.stacked_out"].any() and table["first_set_insurance.stacked_out"].any()


def _chunk(args: tuple[int, int]) -> dict[str, int]:
    rows, seed = args
    params = default_parameters()
    population = synthetic_population(rows, seed=seed, params=params)
    vector, scalar = evaluate_batch(population, params), scalar_frame(population, params)
    return {c: int((vector[c].astype(object).to_numpy() != scalar[c].astype(object).to_numpy()).sum())
            for c in vector.columns}


@pytest.mark.slow
def test_vector_and_scalar_agree_on_100000_random_enterprise_years():
    # 100,000 rows in 20 seeded chunks, spread over the available cores (the scalar path is the slow side).
    chunks = [(5_000, 1000 + i) for i in range(20)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(_chunk, chunks))
    mismatches = {c: n for result in results for c, n in result.items() if n}
    assert sum(rows for rows, _ in chunks) == 100_000
    assert mismatches == {}


def test_money_columns_must_be_integers_never_floats():
    frame = pd.DataFrame({"on": [pd.Timestamp("2024-12-31")], "total_revenue_fen": [1e10],
                          "rd_core_costs_fen": [720_000_000]})
    with pytest.raises(BatchInputError, match="total_revenue_fen"):
        evaluate_batch(frame, PARAMS)


GREEN_ROW = {"loan_approved_on": pd.Timestamp("2025-10-01"), "green_activity": "industrial_energy_retrofit",
             "loan_principal_fen": 10**10, "benchmark_product": "cement_clinker",
             "industrial_structure_class": "permitted"}


def test_energy_intensity_columns_take_exact_decimals_and_agree_with_the_scalar_path(tmp_path):
    texts = ["99.5", "100", "100.000", "100.001", "117.0", "117.001", "-0.5"]
    frame = pd.DataFrame([{**GREEN_ROW, "energy_intensity": t} for t in texts])
    frame["on"] = pd.Timestamp("2025-10-02")
    table = evaluate_batch(frame, PARAMS)
    assert table["green_loan.failed_gates"].tolist() == [
        "", "", "", "energy_advanced", "energy_advanced", "energy_baseline;energy_advanced", ""]
    assert_same(table, scalar_frame(frame, PARAMS))
    # Integer columns are whole units; Decimals and CSV text are exact too.
    from decimal import Decimal

    ints = frame.assign(energy_intensity=pd.array([99, 100, 100, 101, 117, 118, -1], dtype="Int64"))
    assert_same(evaluate_batch(ints, PARAMS), scalar_frame(ints, PARAMS))
    decimals = frame.assign(energy_intensity=[Decimal(t) for t in texts])
    assert_same(evaluate_batch(decimals, PARAMS), table)
    path = tmp_path / "green.csv"
    frame.to_csv(path, index=False)
    loaded = read_population(path)
    assert_same(evaluate_batch(loaded, PARAMS), table)
    assert_same(evaluate_batch(loaded, PARAMS), scalar_frame(loaded, PARAMS))


def test_energy_intensity_floats_and_inexact_text_are_refused():
    frame = pd.DataFrame([{**GREEN_ROW, "energy_intensity": 99.5}])
    with pytest.raises(BatchInputError, match="energy_intensity: must be exact decimals"):
        evaluate_batch(frame, PARAMS, on=date(2025, 10, 2))
    for bad in ("99.0005", "1e3", "99,5", " ", "abc"):
        with pytest.raises(BatchInputError, match="energy_intensity: rows \\[0\\]"):
            evaluate_batch(pd.DataFrame([{**GREEN_ROW, "energy_intensity": bad}]), PARAMS, on=date(2025, 10, 2))


def test_out_of_range_rows_are_reported_by_column_and_row():
    frame = pd.DataFrame({"on": pd.to_datetime(["2024-12-31"] * 3), "total_revenue_fen": [100, -5, 100],
                          "rd_core_costs_fen": [10, 10, -1]})
    with pytest.raises(BatchInputError) as info:
        evaluate_batch(frame, PARAMS)
    assert info.value.problems == ("total_revenue_fen: rows [1] are outside 0..100000000000000",
                                   "rd_core_costs_fen: rows [2] are outside 0..100000000000000")


def test_inconsistent_rows_are_refused_like_the_scalar_path_refuses_them():
    frame = pd.DataFrame({"on": pd.to_datetime(["2024-12-31"] * 2), "total_revenue_fen": [100, 100],
                          "rd_core_costs_fen": [10, 10], "rd_fiscal_funded_core_fen": [0, 20]})
    expected = r"rd_fiscal_funded_core_fen: cannot exceed rd_core_costs_fen \(rows \[1\]\)"
    with pytest.raises(BatchInputError, match=expected):
        evaluate_batch(frame, PARAMS)
    with pytest.raises(BatchInputError, match="rd_fiscal_funded_core_fen"):
        scalar_frame(frame, PARAMS)


def test_a_batch_without_a_day_is_refused():
    with pytest.raises(BatchInputError, match="on"):
        evaluate_batch(pd.DataFrame({"rd_core_costs_fen": [1]}), PARAMS)


def test_missing_required_facts_mean_not_evaluated():
    records = [{"total_revenue_fen": 10**10, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000},
               {"rd_core_costs_fen": 720_000_000}]
    table = evaluate_batch(records, PARAMS, on=date(2024, 12, 31))
    assert table["rd_super_deduction.evaluated"].tolist() == [True, False]
    assert table["rd_super_deduction.tax_saving_fen"].tolist() == [200_000_000, 0]
    assert table["rd_super_deduction.tax_saving_fen"].dtype == np.int64


def test_a_csv_round_trip_keeps_integers_exact(tmp_path):
    population = synthetic_population(300, seed=5, params=PARAMS)
    path = tmp_path / "population.csv"
    population.to_csv(path, index=False)
    loaded = read_population(path)
    assert loaded["total_revenue_fen"].dtype == "Int64"
    assert_same(evaluate_batch(loaded, PARAMS), evaluate_batch(population, PARAMS))


def test_input_columns_are_documented():
    names = {c["name"] for c in column_docs()}
    assert {"on", "city", "rd_core_costs_fen", "loan_approved_on"} <= names
