"""Run the regulator-readable golden case tables in registry/golden/*.yaml against the pure rules."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

import registry
from registry.domain.accounting import (
    ActivityLine,
    ElectricityBasis,
    EnergyLine,
    LineType,
    account_carbon,
    account_energy,
    electricity_conversion,
)
from registry.domain.allocation import deduct_from_allocation, power_allocation, pre_allocation, true_up
from registry.domain.calendar import deadline_instant
from registry.domain.factor_defaults import DEFAULT_ENERGY_COEFFICIENTS, default_carbon_factors
from registry.domain.settlement import (
    CarbonPenalty,
    ObligationFacts,
    SettlementParams,
    SurrenderFact,
    UnitPenalty,
    settle,
    totals_by,
)
from registry.domain.surrender import (
    Holding,
    InstrumentKind,
    Obligation,
    ObligationKind,
    SurrenderedSoFar,
    SurrenderLine,
    SurrenderPlan,
    SurrenderRules,
    energy_obligation,
    plan_surrender,
    validate_surrender,
)
from registry.domain.violations import ComplianceParameterError, Rejected

GOLDEN = Path(registry.__file__).parent / "golden"


def _load(name: str) -> dict[str, Any]:
    with (GOLDEN / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _cases(name: str) -> list[Any]:
    return [pytest.param(c, id=c["name"]) for c in _load(name)["cases"]]


def _yuan_to_fen(text: str) -> int:
    """Parse a 元 amount with at most 2 decimals exactly; anything finer is a broken table."""
    value = Decimal(text) * 100
    assert value == value.to_integral_value(), f"{text} has more than 2 decimals"
    return int(value)


def _fen_to_yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def _instant(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    assert at.tzinfo is not None, f"golden instant {text} must carry its offset"
    return at


def _deadline(text: str) -> datetime:
    return deadline_instant(date.fromisoformat(text))


# ---------------------------------------------------------------------------------------------------
# Settlement


def _settlement_params(raw: dict[str, Any]) -> SettlementParams:
    carbon = raw.get("carbon")
    energy = raw.get("energy")
    return SettlementParams(
        carbon=None
        if carbon is None
        else CarbonPenalty(_yuan_to_fen(carbon["reference_price_yuan"]), int(carbon["multiplier_k"])),
        energy=None
        if energy is None
        else UnitPenalty(_yuan_to_fen(energy["fine_yuan_per_unit"]), int(energy["deduction_bps"]), energy["citation"]),
        reserve_available=raw.get("reserve_available"),
    )


def _facts(raw: dict[str, Any]) -> ObligationFacts:
    return ObligationFacts(
        obligation_id=raw["id"],
        enterprise_id=raw["enterprise"],
        city=raw["city"],
        industry=raw["industry"],
        kind=ObligationKind(raw["kind"]),
        verified_quantity=raw["verified"],
        surrenders=tuple(
            SurrenderFact(s["quantity"], _instant(s["at"]), bool(s.get("offset", False)))
            for s in raw.get("surrenders", [])
        ),
        pollutant=raw.get("pollutant"),
        forced_surrender_ordered=raw.get("forced_surrender_ordered", 0),
    )


@pytest.mark.parametrize("case", _cases("settlement.yaml"))
def test_settlement_golden_case(case: dict[str, Any]) -> None:
    params = _settlement_params(case["params"])
    facts = [_facts(o) for o in case["obligations"]]
    deadline = _deadline(case["deadline"])
    if "expect_error" in case:
        with pytest.raises(ComplianceParameterError) as caught:
            settle(facts, params, deadline)
        assert [v.code for v in caught.value.violations] == case["expect_error"]
        return
    results = {r.obligation_id: r for r in settle(facts, params, deadline)}
    for expected in case["expect"]:
        result = results[expected["id"]]
        for key, value in expected.items():
            if key == "id":
                continue
            if key == "fine_yuan":
                assert _fen_to_yuan(result.fine_fen) == value
                assert result.fine_fen == _yuan_to_fen(value)
            elif key in ("status", "timeliness"):
                assert getattr(result, key).value == value, key
            else:
                assert getattr(result, key) == value, key
    for expected in case.get("expect_totals_by_city", []):
        totals = {t.key: t for t in totals_by(results.values(), "city")}
        total = totals[expected["key"]]
        for key, value in expected.items():
            if key == "fine_yuan":
                assert _fen_to_yuan(total.fine_fen) == value
            else:
                assert getattr(total, key) == value, key


def test_settlement_worked_case_is_exactly_42_399_700_000_fen() -> None:
    # The headline number, independent of the YAML table, so that editing the table cannot hide a break.
    [result] = settle(
        [ObligationFacts("nx", "e", "银川", "4411", ObligationKind.CARBON, 865_300)],
        SettlementParams(carbon=CarbonPenalty(9_800, 5)),
        _deadline("2024-12-31"),
    )
    assert result.fine_fen == 42_399_700_000


# ---------------------------------------------------------------------------------------------------
# Surrender


def _surrender_rules(raw: dict[str, Any]) -> SurrenderRules:
    return SurrenderRules(
        eligible_vintages=frozenset(raw["eligible_vintages"]),
        deadline=_deadline(raw["deadline"]),
        offset_cap_bps=raw.get("offset_cap_bps", 500),
        late_until=_deadline(raw["late_until"]) if raw.get("late_until") else None,
    )


@pytest.mark.parametrize("case", _cases("surrender.yaml"))
def test_surrender_golden_case(case: dict[str, Any]) -> None:
    defaults = _load("surrender.yaml")["defaults"]
    rules = _surrender_rules(case.get("rules", defaults["rules"]))
    so_far = SurrenderedSoFar(**case.get("so_far", defaults["so_far"]))
    at = _instant(case.get("at", defaults["at"]))
    holdings = [
        Holding(h["asset_id"], InstrumentKind(h["kind"]), h["vintage"], h["available"], h.get("pollutant"))
        for h in case.get("holdings", defaults["holdings"])
    ]
    ob = case["obligation"]
    obligation = Obligation(ObligationKind(ob["kind"]), ob["quantity"], ob.get("pollutant"))
    if "plan" in case:
        outcome = plan_surrender(
            obligation, holdings, rules, so_far, at=at, offsets_wanted=case["plan"]["offsets_wanted"]
        )
    else:
        lines = [SurrenderLine(r["asset_id"], r["quantity"]) for r in case["request"]]
        outcome = validate_surrender(obligation, lines, holdings, rules, so_far, at=at)
    expect = case["expect"]
    if "rejected" in expect:
        assert isinstance(outcome, Rejected), outcome
        assert list(outcome.codes) == expect["rejected"]
        return
    assert isinstance(outcome, SurrenderPlan), outcome
    for key, value in expect.items():
        if key == "accepted":
            continue
        if key == "lines":
            assert [{"asset_id": ln.asset_id, "quantity": ln.quantity} for ln in outcome.lines] == value
        else:
            assert getattr(outcome, key) == value, key


# ---------------------------------------------------------------------------------------------------
# Energy-use obligation


@pytest.mark.parametrize("case", _cases("energy_use.yaml"))
def test_energy_use_golden_case(case: dict[str, Any]) -> None:
    conv = case["conversion"]
    factor = Decimal(conv["kgce_per_kwh"]) if "kgce_per_kwh" in conv else None
    outcome = energy_obligation(
        case["verified_kgce"],
        ElectricityBasis(case["verified_basis"]),
        case["retired_gec_mwh"],
        electricity_conversion(ElectricityBasis(conv["basis"]), factor),
        electricity_consumed_mwh=case.get("electricity_consumed_mwh"),
    )
    expect = case["expect"]
    if "rejected" in expect:
        assert isinstance(outcome, Rejected)
        assert list(outcome.codes) == expect["rejected"]
        return
    assert not isinstance(outcome, Rejected), outcome
    assert outcome.gec_mwh_counted == expect["gec_mwh_counted"]
    assert outcome.deduction_kgce == expect["deduction_kgce"]
    assert outcome.obligation_kgce == expect["obligation_kgce"]
    assert outcome.conversion.kgce_per_mwh == Fraction(Decimal(expect["kgce_per_mwh"]))


# ---------------------------------------------------------------------------------------------------
# Accounting and allocation


@pytest.mark.parametrize("case", _cases("accounting.yaml"))
def test_accounting_golden_case(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if case["rule"] == "account_carbon":
        lines = [
            ActivityLine(LineType(ln["line_type"]), ln["item"], Decimal(ln["quantity"]), ln["unit"])
            for ln in case["lines"]
        ]
        outcome = account_carbon(lines, default_carbon_factors(case["reporting_year"]))
        if "rejected" in expect:
            assert isinstance(outcome, Rejected)
            assert list(outcome.codes) == expect["rejected"]
            return
        assert not isinstance(outcome, Rejected), outcome
        assert outcome.total_tco2e == expect["total_tco2e"]
        if "lines_tco2e" in expect:
            assert [ln.tco2e_text for ln in outcome.lines] == expect["lines_tco2e"]
        return
    el = case["electricity"]
    conversion = electricity_conversion(
        ElectricityBasis(el["basis"]), Decimal(el["kgce_per_kwh"]) if "kgce_per_kwh" in el else None
    )
    energy_lines = [EnergyLine(ln["item"], Decimal(ln["quantity"]), ln["unit"]) for ln in case["lines"]]
    energy = account_energy(energy_lines, DEFAULT_ENERGY_COEFFICIENTS, conversion)
    assert not isinstance(energy, Rejected), energy
    assert energy.total_kgce == expect["total_kgce"]
    assert energy.electricity.basis.value == expect["electricity_basis"]
    assert str(energy.electricity.kgce_per_kwh) == expect["electricity_kgce_per_kwh"]


@pytest.mark.parametrize("case", _cases("allocation.yaml"))
def test_allocation_golden_case(case: dict[str, Any]) -> None:
    rule = case["rule"]
    expect = case["expect"]
    if rule == "power_allocation":
        result = power_allocation(
            Decimal(case["supply_benchmark_tco2_per_mwh"]),
            Decimal(case["supply_mwh"]),
            [Decimal(c) for c in case["supply_corrections"]],
            Decimal(case["heat_benchmark_tco2_per_gj"]),
            Decimal(case["heat_gj"]),
        )
        assert result.quantity == expect["quantity"]
    elif rule == "pre_allocation":
        assert pre_allocation(case["previous_verified_tco2e"], case["ratio_bps"]) == expect["quantity"]
    elif rule == "true_up":
        t = true_up(case["final_allocation"], case["pre_allocated"])
        assert (t.direction.value, t.quantity, t.delta) == (expect["direction"], expect["quantity"], expect["delta"])
    elif rule == "deduct_from_allocation":
        d = deduct_from_allocation(case["allocation"], case["owed"])
        assert (d.deducted, d.allocation_after, d.owed_after) == (
            expect["deducted"],
            expect["allocation_after"],
            expect["owed_after"],
        )
    else:  # pragma: no cover - a table naming an unknown rule must fail loudly.
        pytest.fail(f"unknown rule {rule}")


def test_every_golden_file_is_exercised() -> None:
    # A new table dropped into registry/golden/ without a runner here would silently never run.
    assert {p.name for p in GOLDEN.glob("*.yaml")} == {
        "settlement.yaml",
        "surrender.yaml",
        "energy_use.yaml",
        "accounting.yaml",
        "allocation.yaml",
    }
