"""Golden cases (incentives/golden/*.yaml): every case on the scalar path, and the same cases on the vector path."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest

from incentives.batch import evaluate_batch, evaluation_row
from incentives.domain.programmes import PROGRAMMES
from incentives.domain.rules import evaluate_all
from incentives.parameters import default_parameters
from tests.incentives.golden import check, load_cases, run

CASES = load_cases()
PARAMS = default_parameters()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_case_matches_the_engine(case):
    assert check(case, PARAMS) == []


def test_every_programme_has_golden_cases_of_every_kind():
    by_programme = defaultdict(list)
    for case in CASES:
        by_programme[case.programme].append(case)
    missing = []
    for programme in PROGRAMMES:
        cases = by_programme[programme.code]
        tags = set().union(*(c.tags for c in cases)) if cases else set()
        for needed in ("eligible", "gate", "threshold", "change_before", "change_on"):
            if needed not in tags:
                missing.append(f"{programme.code}: no {needed} case")
        failed = {g for c in cases for g in c.expect.get("failed_gates", [])}
        for code in programme.gate_codes:
            if code not in failed:
                missing.append(f"{programme.code}: gate {code} never fails in a golden case")
    assert missing == []


def test_every_worked_example_of_domain_md_is_a_golden_case():
    worked = {c.programme for c in CASES if "worked" in c.tags}
    assert worked == {"rd_super_deduction", "equipment_credit", "first_set_insurance"}


def test_golden_cases_give_the_same_result_on_the_vector_path():
    # Each case becomes one batch row evaluated for its own programme; error cases are left out.
    rows, expected = [], []
    for case in CASES:
        if case.expect.get("error"):
            continue
        determination = run(case, PARAMS)
        rows.append({**case.facts, "on": case.day})
        expected.append((case, determination))
    for known_on in {c.known_on for c, _ in expected}:
        chosen = [i for i, (c, _) in enumerate(expected) if c.known_on == known_on]
        table = evaluate_batch([rows[i] for i in chosen], PARAMS, known_on=known_on)
        for position, i in enumerate(chosen):
            case, d = expected[i]
            row = table.iloc[position]
            code = case.programme
            assert row[f"{code}.evaluated"], case.id
            assert bool(row[f"{code}.eligible"]) == d.eligible, case.id
            assert row[f"{code}.failed_gates"] == ";".join(d.failed_gates), case.id
            for name, value in d.outputs:
                assert int(row[f"{code}.{name}"]) == value, (case.id, name)


def test_golden_rows_agree_across_all_programmes_including_stacking():
    # The whole-row comparison (every programme, stacking) on the golden facts, scalar vs vector.
    rows = [{**c.facts, "on": c.day} for c in CASES if not c.expect.get("error") and c.known_on is None]
    vector = evaluate_batch(rows, PARAMS)
    scalar = pd.DataFrame([evaluation_row(evaluate_all(PROGRAMMES, {k: v for k, v in r.items() if k != "on"},
                                                       PARAMS, r["on"])) for r in rows])
    pd.testing.assert_frame_equal(vector[scalar.columns].astype(object), scalar.astype(object), check_dtype=False)


def test_every_golden_determination_is_json_and_hashes_the_same_twice():
    import json

    for case in CASES:
        if case.expect.get("error"):
            continue
        first, second = run(case, PARAMS), run(case, PARAMS)
        record = json.loads(first.to_json())
        assert record["programme"] == case.programme
        assert first.digest() == second.digest(), case.id
        for parameter in record["parameters"]:
            if parameter["kind"] == "catalogue":
                # A catalogue is pinned by edition, size and hash, not copied into every determination.
                assert set(parameter["value"]) == {"edition", "item_count", "sha256"}
