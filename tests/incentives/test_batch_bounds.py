"""Every column of a batch row is bounded, and the three ways a row comes in agree on the bounds: the JSON
record (`schemas.BatchRecord`, refused at decoding, the bounds stated in the OpenAPI document), the CSV or
DataFrame on the vector path (`incentives.batch.prepare`) and the scalar facts check (`facts.normalise`). A
value at its bound is taken by all three; one past it is refused by all three, naming the column. Through the
API an out-of-bound cell answers 422 naming the column, for evaluateBatch (JSON and CSV) and simulateReform."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from core.errors import AppError
from core.identity import Role
from core.schema import MAX_ID, YEAR_MAX, YEAR_MIN
from incentives import schemas as s
from incentives.batch import BatchInputError, prepare
from incentives.batch_input import frame_from_csv, frame_from_records
from incentives.domain.arith import MAX_FEN, MILLI_TEXT_MAX
from incentives.domain.facts import FACTS, INT_LIMIT, INT_LIMITS, FactsError, normalise
from tests.incentives.test_api import env  # noqa: F401  (the module-scoped app and database)

BASE = "/api/v1/incentives"
RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}


def _edges(name: str) -> tuple[list[Any], list[Any]]:
    """Values of a fact at its bounds (taken) and just past them (refused)."""
    spec = FACTS[name]
    if spec.kind in INT_LIMITS:
        low, high = INT_LIMITS[spec.kind]
        return [low, high], [low - 1, high + 1]
    if spec.kind == "milli":
        at_length = "1." + "0" * (MILLI_TEXT_MAX - 2)
        return [-INT_LIMIT, INT_LIMIT, at_length], [-INT_LIMIT - 1, INT_LIMIT + 1, at_length + "0"]
    assert spec.kind == "str", name
    return ["x" * spec.text_max], ["x" * (spec.text_max + 1)]


BOUNDED = [name for name, spec in FACTS.items() if spec.kind not in ("bool", "date")]


def _csv(name: str, value: object) -> bytes:
    return f"on,{name}\n2024-12-31,{value}\n".encode()


def _json_record(name: str, value: object) -> Any:
    return msgspec.convert({"on": "2024-12-31", name: value}, s.BatchRecord)


def test_every_fact_column_is_bounded() -> None:
    assert len(BOUNDED) == sum(1 for spec in FACTS.values() if spec.kind not in ("bool", "date"))
    assert {FACTS[n].kind for n in BOUNDED} == {"fen", "count", "bp", "year", "milli", "str"}


@pytest.mark.parametrize("name", BOUNDED)
def test_json_csv_and_scalar_paths_agree_on_each_facts_bounds(name: str) -> None:
    taken, refused = _edges(name)
    for value in taken:
        _json_record(name, value)
        assert name in normalise([name], {name: value})
        prepared = prepare(frame_from_records([_json_record(name, value)]))
        assert prepared.present[name].tolist() == [True]
        if not isinstance(value, str) or value.strip():
            prepare(frame_from_csv(_csv(name, value)))
    for value in refused:
        with pytest.raises(msgspec.ValidationError, match=f"`\\$.{name}`"):
            _json_record(name, value)
        with pytest.raises(FactsError) as scalar:
            normalise([name], {name: value})
        assert [f for f, _ in scalar.value.problems] == [name]
        with pytest.raises((BatchInputError, AppError)) as vector:
            prepare(frame_from_csv(_csv(name, value)))
        error = vector.value
        problems = error.problems if isinstance(error, BatchInputError) else error.extra["problems"]
        assert [p.split(":", 1)[0] for p in problems] == [name], problems


def test_yuan_aliases_and_passthrough_columns_are_bounded() -> None:
    # Yuan: the text of MAX_FEN (16 characters, no leading zeros) is the longest; MAX_FEN itself is taken.
    assert len("1000000000000.00") == s.YUAN_TEXT_MAX
    frame = frame_from_records([_json_record("total_revenue_yuan", "1000000000000.00"),
                                _json_record("total_revenue_yuan", MAX_FEN // 100)])
    assert frame["total_revenue_fen"].tolist() == [MAX_FEN, MAX_FEN]
    prepare(frame)
    for value in ("1" * 17, "1000000000000.001", MAX_FEN // 100 + 1, -1):
        with pytest.raises(msgspec.ValidationError, match=r"`\$.total_revenue_yuan`"):
            _json_record("total_revenue_yuan", value)
    # One fen past MAX_FEN fits the text but not the range: refused by the vector path, from JSON and CSV alike.
    for frame in (frame_from_records([_json_record("total_revenue_yuan", "1000000000000.01")]),
                  frame_from_csv(_csv("total_revenue_yuan", "1000000000000.01"))):
        with pytest.raises(BatchInputError, match=r"^total_revenue_fen: "):
            prepare(frame)
    # Passthrough columns: enterprise_id (an id or a code), city (a name), year.
    taken = {"enterprise_id": [1, MAX_ID, "E" * s.ENTERPRISE_TEXT_MAX], "city": ["南" * s.CITY_MAX],
             "year": [YEAR_MIN, YEAR_MAX]}
    refused = {"enterprise_id": [0, MAX_ID + 1, "E" * (s.ENTERPRISE_TEXT_MAX + 1)],
               "city": ["南" * (s.CITY_MAX + 1)], "year": [YEAR_MIN - 1, YEAR_MAX + 1]}
    for name, values in taken.items():
        for value in values:
            _json_record(name, value)
            frame_from_csv(_csv(name, value))
    for name, values in refused.items():
        for value in values:
            with pytest.raises(msgspec.ValidationError, match=f"`\\$.{name}`"):
                _json_record(name, value)
            if isinstance(value, int) and name == "enterprise_id":
                continue  # a CSV cell is always text: the id's range is the JSON form's
            with pytest.raises(AppError) as csv:
                frame_from_csv(_csv(name, value))
            assert csv.value.field == name and csv.value.status == 422


async def test_an_out_of_bound_cell_is_refused_naming_the_column(env) -> None:  # noqa: F811
    key = await env.key(Role.REGULATOR)
    good = {**RD, "on": "2024-12-31"}
    # JSON records: the record and the column are named, nothing is evaluated or recorded.
    for column, value in (("ru_cit_resource_share_bp", 10_001), ("tax_credit_grade", "A" * 65),
                          ("total_revenue_yuan", "1" * 17), ("city", "x" * 201), ("tech_staff", -1)):
        r = await env.client.post(f"{BASE}/batch", json={"records": [good, {**good, column: value}]},
                                  headers=env.h(key))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == f"records[1].{column}", r.json()
        assert "X-Batch-Run-Id" not in r.headers
    # CSV: a batch problem naming the column and its rows.
    for column, value in (("ru_cit_resource_share_bp", 10_001), ("tax_credit_grade", "A" * 65),
                          ("city", "x" * 201), ("year", 1899), ("energy_intensity", "1" * 33)):
        body = f"on,total_revenue_fen,rd_core_costs_fen,{column}\n2024-12-31,1,1,\n2024-12-31,1,1,{value}\n"
        r = await env.client.post(f"{BASE}/batch", content=body.encode(),
                                  headers={**env.h(key), "Content-Type": "text/csv"})
        assert r.status_code == 422, r.text
        assert r.json()["type"] == "/problems/batch-input-invalid" and r.json()["field"] == column, r.json()
    # A reform's population records are the same rows, refused the same way.
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.extra_deduction_bp": 12000},
        "population": {"records": [good, {**good, "fs_premium_rate_bp": 10_001}]}}, headers=env.h(key))
    assert r.status_code == 422, r.text
    assert r.json()["field"].endswith("records[1].fs_premium_rate_bp"), r.json()
    # The scalar path refuses the same value, naming the fact.
    r = await env.client.post(f"{BASE}/eligibility", json={
        "on": "2024-12-31", "facts": {**RD, "tax_credit_grade": "A" * 65}}, headers=env.h(key))
    assert r.status_code == 422 and r.json()["field"] == "facts.tax_credit_grade", r.text
