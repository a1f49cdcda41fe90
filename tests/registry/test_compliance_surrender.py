"""Tests of registry/domain/surrender.py (the golden tables cover the regulator's worked cases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.accounting import ElectricityBasis, electricity_conversion
from registry.domain.calendar import deadline_instant
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
    offset_cap,
    plan_surrender,
    validate_surrender,
    vintages,
)
from registry.domain.violations import Rejected

DEADLINE = deadline_instant(date(2025, 12, 31))
BEFORE = DEADLINE - timedelta(microseconds=1)
RULES = SurrenderRules(eligible_vintages=vintages(2023, 2024), deadline=DEADLINE)
CARBON = Obligation(ObligationKind.CARBON, 1_000)
HOLDINGS = [
    Holding("CEA-2023", InstrumentKind.ALLOWANCE, 2023, 600),
    Holding("CEA-2024", InstrumentKind.ALLOWANCE, 2024, 900),
    Holding("CCER-1", InstrumentKind.OFFSET, 2019, 100),
    Holding("UER-2024", InstrumentKind.ENERGY_RIGHT, 2024, 5_000),
]
NONE = SurrenderedSoFar()


def _validate(lines: list[SurrenderLine], **kwargs: object) -> SurrenderPlan | Rejected:
    at = kwargs.pop("at", BEFORE)
    assert isinstance(at, datetime)
    obligation = kwargs.pop("obligation", CARBON)
    assert isinstance(obligation, Obligation)
    rules = kwargs.pop("rules", RULES)
    assert isinstance(rules, SurrenderRules)
    return validate_surrender(obligation, lines, HOLDINGS, rules, NONE, at=at, **kwargs)  # type: ignore[arg-type]


def test_last_microsecond_of_the_deadline_day_is_on_time_and_midnight_is_closed() -> None:
    ok = _validate([SurrenderLine("CEA-2023", 10)], at=BEFORE)
    assert isinstance(ok, SurrenderPlan)
    assert ok.late is False
    closed = _validate([SurrenderLine("CEA-2023", 10)], at=DEADLINE)
    assert isinstance(closed, Rejected)
    assert closed.codes == ("period-closed",)


def test_deadline_compares_instants_across_time_zones() -> None:
    # 15:59:59 UTC on 31 Dec is 23:59:59 in Shanghai: still on time; 16:00 UTC is midnight: closed.
    on_time = _validate([SurrenderLine("CEA-2023", 1)], at=datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC))
    closed = _validate([SurrenderLine("CEA-2023", 1)], at=datetime(2025, 12, 31, 16, 0, tzinfo=UTC))
    assert isinstance(on_time, SurrenderPlan)
    assert isinstance(closed, Rejected)


def test_a_settled_period_is_closed_even_before_the_deadline() -> None:
    result = _validate([SurrenderLine("CEA-2023", 1)], period_closed=True)
    assert isinstance(result, Rejected)
    assert result.codes == ("period-closed",)


def test_naive_instant_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _validate([SurrenderLine("CEA-2023", 1)], at=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        SurrenderRules(frozenset({2024}), datetime(2025, 12, 31))


def test_quantities_must_be_positive_and_available_summed_over_lines() -> None:
    result = _validate(
        [
            SurrenderLine("CEA-2023", 0),
            SurrenderLine("CEA-2023", 400),
            SurrenderLine("CEA-2023", 300),
            SurrenderLine("CEA-1999", 1),
        ]
    )
    assert isinstance(result, Rejected)
    assert result.codes == ("quantity-not-positive", "insufficient-available", "insufficient-available")
    assert result.violations[1].detail_dict() == {"asset_id": "CEA-2023", "requested": "700", "available": "600"}
    assert result.violations[2].detail_dict()["available"] == "0"


def test_units_of_another_kind_cannot_cover_the_obligation() -> None:
    carbon = _validate([SurrenderLine("UER-2024", 10)])
    assert isinstance(carbon, Rejected)
    assert carbon.codes == ("instrument-not-eligible",)
    energy = _validate([SurrenderLine("CCER-1", 10)], obligation=Obligation(ObligationKind.ENERGY, 100))
    assert isinstance(energy, Rejected)
    assert energy.codes == ("instrument-not-eligible",)


def test_offset_vintages_can_be_restricted_separately() -> None:
    rules = SurrenderRules(vintages(2023, 2024), DEADLINE, eligible_offset_vintages=frozenset({2020}))
    result = _validate([SurrenderLine("CCER-1", 10)], rules=rules)
    assert isinstance(result, Rejected)
    assert result.codes == ("vintage-not-eligible",)
    assert "2020" in result.violations[0].message


def test_over_surrender_is_refused_unless_the_scheme_allows_it() -> None:
    lines = [SurrenderLine("CEA-2023", 600), SurrenderLine("CEA-2024", 401)]
    refused = _validate(lines)
    assert isinstance(refused, Rejected)
    assert refused.codes == ("surrender-above-obligation",)
    rules = SurrenderRules(vintages(2023, 2024), DEADLINE, allow_over_surrender=True)
    allowed = _validate(lines, rules=rules)
    assert isinstance(allowed, SurrenderPlan)
    assert allowed.outstanding_after == 0


def test_empty_request_is_refused() -> None:
    result = _validate([])
    assert isinstance(result, Rejected)
    assert result.codes == ("nothing-to-surrender",)


def test_plan_uses_no_offsets_unless_asked() -> None:
    plan = plan_surrender(CARBON, HOLDINGS, RULES, NONE, at=BEFORE)
    assert isinstance(plan, SurrenderPlan)
    assert plan.offsets == 0
    assert [(ln.asset_id, ln.quantity) for ln in plan.lines] == [("CEA-2023", 600), ("CEA-2024", 400)]


def test_plan_respects_offsets_already_used() -> None:
    plan = plan_surrender(
        CARBON, HOLDINGS, RULES, SurrenderedSoFar(total=100, offsets=30), at=BEFORE, offsets_wanted=99
    )
    assert isinstance(plan, SurrenderPlan)
    assert plan.offsets == 20  # cap 50 − 30 already used
    assert plan.quantity == 900


def test_plan_refuses_when_nothing_is_outstanding_or_nothing_is_eligible() -> None:
    met = plan_surrender(CARBON, HOLDINGS, RULES, SurrenderedSoFar(total=1_000), at=BEFORE)
    assert isinstance(met, Rejected)
    assert met.codes == ("obligation-already-met",)
    nothing = plan_surrender(Obligation(ObligationKind.DISCHARGE, 5, "SO2"), HOLDINGS, RULES, NONE, at=DEADLINE)
    assert isinstance(nothing, Rejected)
    assert nothing.codes == ("period-closed", "no-eligible-holdings")


def test_allowances_can_be_surrendered_when_earlier_offsets_exceed_a_lowered_cap() -> None:
    so_far = SurrenderedSoFar(total=60, offsets=60)  # above the 50 cap of a corrected obligation
    ok = validate_surrender(CARBON, [SurrenderLine("CEA-2023", 10)], HOLDINGS, RULES, so_far, at=BEFORE)
    assert isinstance(ok, SurrenderPlan)
    more = validate_surrender(CARBON, [SurrenderLine("CCER-1", 1)], HOLDINGS, RULES, so_far, at=BEFORE)
    assert isinstance(more, Rejected)
    assert more.codes == ("offset-cap-exceeded",)


def test_offset_cap_is_rounded_down() -> None:
    assert offset_cap(1_000_019) == 50_000
    assert offset_cap(19) == 0
    assert offset_cap(1_000, 1_000) == 100


holding_st = st.builds(
    Holding,
    asset_id=st.sampled_from(["a", "b", "c", "d", "e"]),
    kind=st.sampled_from([InstrumentKind.ALLOWANCE, InstrumentKind.OFFSET]),
    vintage=st.integers(2020, 2025),
    available=st.integers(0, 5_000),
)


@given(
    holdings=st.lists(holding_st, max_size=6, unique_by=lambda h: h.asset_id),
    quantity=st.integers(1, 20_000),
    already=st.integers(0, 20_000),
    offsets_already=st.integers(0, 2_000),
    offsets_wanted=st.integers(0, 5_000),
)
def test_a_plan_is_always_valid_and_within_every_limit(
    holdings: list[Holding], quantity: int, already: int, offsets_already: int, offsets_wanted: int
) -> None:
    obligation = Obligation(ObligationKind.CARBON, quantity)
    so_far = SurrenderedSoFar(total=min(already, quantity), offsets=min(offsets_already, already, quantity))
    plan = plan_surrender(obligation, holdings, RULES, so_far, at=BEFORE, offsets_wanted=offsets_wanted)
    if isinstance(plan, Rejected):
        assert set(plan.codes) <= {"obligation-already-met", "no-eligible-holdings"}
        return
    by_id = {h.asset_id: h for h in holdings}
    assert all(0 < ln.quantity <= by_id[ln.asset_id].available for ln in plan.lines)
    assert all(ln.vintage in RULES.eligible_vintages or ln.kind is InstrumentKind.OFFSET for ln in plan.lines)
    assert plan.quantity <= quantity - so_far.total
    assert plan.offsets <= offsets_wanted
    assert so_far.offsets + plan.offsets <= max(offset_cap(quantity), so_far.offsets)
    # Allowances are taken oldest vintage first.
    vintages_taken = [ln.vintage for ln in plan.lines if ln.kind is InstrumentKind.ALLOWANCE]
    assert vintages_taken == sorted(vintages_taken)


def test_energy_obligation_never_goes_below_zero() -> None:
    result = energy_obligation(100, ElectricityBasis.CALORIFIC, 10, electricity_conversion(ElectricityBasis.CALORIFIC))
    assert not isinstance(result, Rejected)
    assert result.deduction_kgce == 1229
    assert result.obligation_kgce == 0
    assert "calorific" in result.explanation


def test_energy_obligation_lists_every_bad_input() -> None:
    result = energy_obligation(
        -1,
        ElectricityBasis.CALORIFIC,
        -1,
        electricity_conversion(ElectricityBasis.EQUIVALENT, Decimal("0.3")),
    )
    assert isinstance(result, Rejected)
    assert result.codes == ("quantity-not-positive", "quantity-not-positive", "electricity-basis-mismatch")
