"""The incentives use cases below the HTTP layer: exact facts at the edge, the two batch readers, registry
facts, and the IncentivesService methods the finance context calls (evaluate, record/store a determination,
read it back)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import AppError
from core.figures import yuan_plain
from core.identity import Identity, Role
from incentives import engine, evaluations
from incentives import schemas as s
from incentives.batch import scalar_records, synthetic_population
from incentives.batch_input import frame_from_csv, frame_from_records
from incentives.domain.arith import MAX_FEN
from incentives.facts_input import parse_facts
from tests.helpers import enterprise
from tests.incentives.test_api import DEMO_FACTS, env  # noqa: F401  (the module-scoped app and database)

RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}
GREEN = {k: v for k, v in DEMO_FACTS.items() if k.startswith(("loan_", "green_", "industrial_", "baseline_",
                                                              "project_", "co2_"))}


@given(st.integers(min_value=0, max_value=MAX_FEN))
@settings(max_examples=200, deadline=None)
def test_a_yuan_string_becomes_exactly_its_fen(fen: int) -> None:
    facts, aliases = parse_facts({"rd_core_costs_yuan": yuan_plain(fen)})
    assert facts == {"rd_core_costs_fen": fen} and aliases == {"rd_core_costs_fen": "rd_core_costs_yuan"}


@pytest.mark.parametrize("raw", ["1.001", "1e3", "-1", " 1", "1,000", "１２", "NaN", 1.5, True])
def test_a_yuan_value_that_would_need_rounding_or_guessing_is_refused(raw: object) -> None:
    with pytest.raises(AppError) as info:
        parse_facts({"rd_core_costs_yuan": raw})
    assert info.value.problem.slug == "facts-invalid" and info.value.field == "facts.rd_core_costs_yuan"


def test_all_fact_problems_are_reported_at_once() -> None:
    with pytest.raises(AppError) as info:
        parse_facts({"nope": 1, "total_revenue_yuan": "x", "rd_core_costs_fen": "5", "tech_staff": 3})
    fields = [p["field"] for p in info.value.extra["problems"]]
    assert fields == ["facts.nope", "facts.total_revenue_yuan", "facts.rd_core_costs_fen"]


def test_csv_and_json_records_build_the_same_batch() -> None:
    population = synthetic_population(300, seed=5, params=engine.parameters())
    records = [msgspec.convert({k: v for k, v in r.items() if v is not None}, s.BatchRecord)
               for r in scalar_records(population)]
    from_json = engine.evaluate_batch(frame_from_records(records))
    from_csv = engine.evaluate_batch(frame_from_csv(population.to_csv(index=False).encode()))
    direct = engine.evaluate_batch(population)
    programme_columns = [c for c in direct.columns if "." in c]
    for column in programme_columns:
        assert from_json[column].tolist() == direct[column].tolist() == from_csv[column].tolist(), column


def test_batch_yuan_records_equal_fen_records() -> None:
    fen = [msgspec.convert({**RD, "on": "2024-12-31"}, s.BatchRecord)]
    in_yuan = [msgspec.convert({"total_revenue_yuan": "100000000", "rd_core_costs_yuan": "7200000.00",
                                "rd_other_costs_yuan": 900000, "on": "2024-12-31"}, s.BatchRecord)]
    a, b = engine.evaluate_batch(frame_from_records(fen)), engine.evaluate_batch(frame_from_records(in_yuan))
    assert a.equals(b)
    with pytest.raises(AppError) as info:
        frame_from_records([msgspec.convert({**RD, "total_revenue_yuan": "1", "on": "2024-12-31"}, s.BatchRecord)])
    assert info.value.field == "total_revenue_yuan"


async def test_the_registry_compliance_status_overrides_the_callers_claim(env) -> None:  # noqa: F811
    svc = env.app.state.incentives
    reg = await env.key(Role.REGULATOR)
    ent = await enterprise(env, reg)
    who = Identity(principal_id=1, organisation_id=ent["organisation_id"], role=Role.EMITTER, label="t")

    class Shortfall:
        async def compliance_status(self, enterprise_id: int, as_of: dt.date | None = None) -> dict[str, Any]:
            assert enterprise_id == ent["id"] and as_of == dt.date(2024, 12, 31)
            return {"enterprise_id": enterprise_id, "open_shortfall": True, "carbon_open_shortfall_t": 500}

    facts = {**GREEN, "green_activity": "wind_power", "carbon_open_shortfall_t": 0}
    out = await evaluations.evaluate_eligibility(replace(svc.ctx, compliance=Shortfall()), who, s.EvaluateEligibility(
        enterprise_id=ent["id"], on=dt.date(2024, 12, 31), facts=facts, programmes=["green_loan"]))
    [det] = out.determinations
    assert [g.code for g in det.failed_gates] == ["carbon_compliant"]
    assert det.failed_gates[0].measured == 500 and det.failed_gates[0].remedy_target == 0
    assert out.registry_facts == [s.RegistryFact(fact="carbon_open_shortfall_t", value=500,
                                                 source="registry.compliance", caller_value=0,
                                                 as_of=dt.date(2024, 12, 31))]
    # Without a compliance service offering the status, the caller's fact stands.
    out = await evaluations.evaluate_eligibility(replace(svc.ctx, compliance=object()), who, s.EvaluateEligibility(
        enterprise_id=ent["id"], on=dt.date(2024, 12, 31), facts=facts, programmes=["green_loan"]))
    assert out.determinations[0].eligible and out.registry_facts == []


async def test_finance_recomputes_stores_and_reads_a_determination(env) -> None:  # noqa: F811
    svc = env.app.state.incentives
    reg = await env.key(Role.REGULATOR)
    ent = await enterprise(env, reg)
    finance = Identity(principal_id=7, organisation_id=99, role=Role.FINANCE_REVIEWER, label="财政厅")
    det = svc.evaluate("rd_super_deduction", RD, dt.date(2024, 12, 31))
    assert det == engine.evaluate("rd_super_deduction", RD, dt.date(2024, 12, 31))
    stored = await svc.store_determination(finance, det, enterprise_id=ent["id"], project_ref="claim-1")
    assert stored.digest == det.digest() and stored.verified and stored.project_ref == "claim-1"
    assert stored.amounts[2].name == "extra_deduction_fen" and stored.amounts[2].yuan == "8000000.00"
    # A trusted caller (finance answering a bank with consent) reads it; the enterprise's emitter too.
    assert (await svc.get_determination(None, stored.id)).digest == det.digest()
    own = Identity(principal_id=8, organisation_id=ent["organisation_id"], role=Role.EMITTER, label="e")
    assert (await svc.get_determination(own, stored.id)).id == stored.id
    for stranger in (replace(own, organisation_id=ent["organisation_id"] + 1000), replace(own, role=Role.BANK)):
        with pytest.raises(AppError) as info:
            await svc.get_determination(stranger, stored.id)
        assert info.value.status == 404

    # Inside finance's own unit of work.
    async def work(uow: Any) -> tuple[int, str]:
        return await svc.record_determination(uow, finance, det, enterprise_id=ent["id"],
                                              enterprise_organisation_id=ent["organisation_id"])

    row_id, digest = await env.db.run(work)
    assert digest == det.digest() and (await svc.get_determination(own, row_id)).verified
