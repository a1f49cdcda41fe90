"""Tests of registry/domain/settlement.py: properties, parameter checks and aggregation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.calendar import deadline_instant
from registry.domain.settlement import (
    CarbonPenalty,
    ObligationFacts,
    SettlementParams,
    Status,
    SurrenderFact,
    Timeliness,
    UnitPenalty,
    reference_price_fen,
    settle,
    totals_by,
)
from registry.domain.surrender import ObligationKind
from registry.domain.violations import ComplianceParameterError

DEADLINE = deadline_instant(date(2024, 12, 31))
ON_TIME = DEADLINE - timedelta(days=3)
LATE = DEADLINE + timedelta(days=3)
PARAMS = SettlementParams(carbon=CarbonPenalty(9_800, 5))


def _carbon(
    verified: int | None, *surrenders: SurrenderFact, forced: int = 0, oid: str = "o", city: str = "南昌"
) -> ObligationFacts:
    return ObligationFacts(oid, f"E-{oid}", city, "4411", ObligationKind.CARBON, verified, surrenders, None, forced)


surrender_st = st.builds(
    SurrenderFact,
    quantity=st.integers(1, 50_000),
    at=st.sampled_from([ON_TIME, DEADLINE - timedelta(microseconds=1), DEADLINE, LATE]),
)
facts_st = st.builds(
    _carbon,
    st.one_of(st.none(), st.integers(0, 200_000)),
    forced=st.integers(0, 50_000),
).flatmap(
    lambda f: st.lists(surrender_st, max_size=4).map(
        lambda ss: ObligationFacts(
            f.obligation_id,
            f.enterprise_id,
            f.city,
            f.industry,
            f.kind,
            f.verified_quantity,
            tuple(ss),
            None,
            f.forced_surrender_ordered,
        )
    )
)


@given(facts=facts_st, k=st.integers(5, 10), price=st.integers(1, 100_000), reserve=st.none() | st.integers(0, 10**6))
def test_settlement_invariants_hold_for_any_facts(
    facts: ObligationFacts, k: int, price: int, reserve: int | None
) -> None:
    params = SettlementParams(carbon=CarbonPenalty(price, k), reserve_available=reserve)
    [r] = settle([facts], params, DEADLINE)
    assert r.shortfall >= 0
    assert r.shortfall_at_deadline >= r.shortfall
    assert r.surrendered_on_time + r.surrendered_late == sum(s.quantity for s in facts.surrenders)
    if r.status is Status.NOT_REPORTED:
        assert facts.verified_quantity is None
        assert (r.shortfall, r.fine_fen, r.next_allocation_deduction) == (0, 0, 0)
        return
    assert r.obligation is not None
    assert r.surrendered + r.shortfall == r.obligation
    assert r.fine_fen == r.shortfall_at_deadline * price * k
    assert r.next_allocation_deduction == r.shortfall
    assert r.forced_quantity <= facts.forced_surrender_ordered
    assert reserve is None or r.forced_quantity <= reserve
    assert (r.status is Status.COMPLIANT) == (r.shortfall == 0)
    assert (r.timeliness is Timeliness.ON_TIME) == (r.shortfall_at_deadline == 0)


@given(a=st.integers(0, 10**7), b=st.integers(0, 10**7), k=st.integers(5, 10), price=st.integers(1, 10**6))
def test_fine_is_linear_in_the_shortfall(a: int, b: int, k: int, price: int) -> None:
    params = SettlementParams(carbon=CarbonPenalty(price, k))
    fa, fb, fab = (settle([_carbon(q)], params, DEADLINE)[0].fine_fen for q in (a, b, a + b))
    assert fab == fa + fb
    assert fa == a * price * k


@given(facts=st.lists(facts_st, max_size=12), split=st.integers(0, 12), reserve=st.integers(0, 100_000))
def test_settling_in_batches_with_the_reserve_left_equals_settling_at_once(
    facts: list[ObligationFacts], split: int, reserve: int
) -> None:
    # The bulk job resumes after a crash by settling the rest with the reserve that is left now.
    whole = settle(facts, SettlementParams(carbon=PARAMS.carbon, reserve_available=reserve), DEADLINE)
    first = settle(facts[:split], SettlementParams(carbon=PARAMS.carbon, reserve_available=reserve), DEADLINE)
    left = reserve - sum(r.forced_quantity for r in first)
    rest = settle(facts[split:], SettlementParams(carbon=PARAMS.carbon, reserve_available=left), DEADLINE)
    assert first + rest == whole


def test_results_keep_input_order_and_are_deterministic() -> None:
    facts = [_carbon(10, oid="b"), _carbon(None, oid="a"), _carbon(5, SurrenderFact(5, ON_TIME), oid="c")]
    first = settle(facts, PARAMS, DEADLINE)
    assert [r.obligation_id for r in first] == ["b", "a", "c"]
    assert [r.status for r in first] == [Status.SHORTFALL, Status.NOT_REPORTED, Status.COMPLIANT]
    assert settle(facts, PARAMS, DEADLINE) == first


def test_over_surrender_is_recorded_as_excess_not_negative_shortfall() -> None:
    [r] = settle([_carbon(10, SurrenderFact(15, ON_TIME))], PARAMS, DEADLINE)
    assert (r.surrendered, r.excess, r.shortfall, r.status) == (10, 5, 0, Status.COMPLIANT)


@pytest.mark.parametrize("k", [4, 11, 0, -5])
def test_multiplier_outside_5_to_10_is_refused_before_anything_is_settled(k: int) -> None:
    with pytest.raises(ComplianceParameterError) as caught:
        settle([_carbon(1)], SettlementParams(carbon=CarbonPenalty(9_800, k)), DEADLINE)
    assert [v.code for v in caught.value.violations] == ["penalty-multiplier-out-of-range"]


def test_every_bad_parameter_is_listed_at_once() -> None:
    params = SettlementParams(
        carbon=CarbonPenalty(0, True, deduction_bps=-1),  # type: ignore[arg-type]
        reserve_available=-1,
        not_reported_fine_fen=-1,
    )
    facts = [_carbon(1), ObligationFacts("e", "E", "南昌", "x", ObligationKind.ENERGY, 5)]
    with pytest.raises(ComplianceParameterError) as caught:
        settle(facts, params, DEADLINE)
    assert [v.code for v in caught.value.violations] == [
        "penalty-multiplier-out-of-range",
        "reference-price-invalid",
        "deduction-ratio-invalid",
        "reserve-invalid",
        "fine-rate-invalid",
        "penalty-missing",
    ]


def test_naive_deadline_or_surrender_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        settle([], PARAMS, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        settle([_carbon(1, SurrenderFact(1, datetime(2024, 12, 1)))], PARAMS, DEADLINE)


def test_forced_surrender_is_carbon_only() -> None:
    facts = ObligationFacts("e", "E", "南昌", "x", ObligationKind.ENERGY, 5, (), None, 5)
    with pytest.raises(ValueError, match="carbon only"):
        settle([facts], SettlementParams(energy=UnitPenalty(1, 10_000, "c")), DEADLINE)


def test_discharge_penalties_are_per_pollutant_and_deduction_ratio_rounds_half_up() -> None:
    params = SettlementParams(discharge={"SO2": UnitPenalty(200, 15_000, "so2"), "NOx": UnitPenalty(100, 5_000, "nox")})
    facts = [
        ObligationFacts(
            "s", "E1", "九江", "2511", ObligationKind.DISCHARGE, 1_000, (SurrenderFact(999, ON_TIME),), "SO2"
        ),
        ObligationFacts(
            "n", "E1", "九江", "2511", ObligationKind.DISCHARGE, 1_000, (SurrenderFact(997, ON_TIME),), "NOx"
        ),
    ]
    so2, nox = settle(facts, params, DEADLINE)
    assert (so2.fine_fen, so2.next_allocation_deduction, so2.citation) == (200, 2, "so2")  # 1.5 → 2
    assert (nox.fine_fen, nox.next_allocation_deduction) == (300, 2)  # 1.5 → 2
    with pytest.raises(ComplianceParameterError, match="COD"):
        settle([ObligationFacts("c", "E", "九江", "x", ObligationKind.DISCHARGE, 1, (), "COD")], params, DEADLINE)


def test_not_reported_fine_is_the_authoritys_parameter() -> None:
    params = SettlementParams(carbon=PARAMS.carbon, not_reported_fine_fen=5_000_000)
    [r] = settle([_carbon(None)], params, DEADLINE)
    assert (r.status, r.fine_fen, r.timeliness) == (Status.NOT_REPORTED, 5_000_000, Timeliness.LATE)


def test_totals_by_city_and_industry_add_up_the_results() -> None:
    facts = [
        _carbon(100, SurrenderFact(100, ON_TIME), oid="a", city="南昌"),
        _carbon(100, SurrenderFact(40, ON_TIME), SurrenderFact(10, LATE), oid="b", city="南昌"),
        _carbon(None, oid="c", city="九江"),
    ]
    results = settle(facts, PARAMS, DEADLINE)
    by_city = {t.key: t for t in totals_by(results, "city")}
    assert list(by_city) == ["九江", "南昌"]
    nc = by_city["南昌"]
    assert (nc.enterprises, nc.compliant, nc.shortfall_count, nc.late) == (2, 1, 1, 1)
    assert (nc.obligation, nc.surrendered, nc.shortfall) == (200, 150, 50)
    assert nc.fine_fen == 60 * 9_800 * 5
    assert nc.next_allocation_deduction == 50
    assert by_city["九江"].not_reported == 1
    [industry] = totals_by(results, "industry")
    assert (industry.key, industry.enterprises, industry.fine_fen) == ("4411", 3, nc.fine_fen)


def test_totals_never_mix_kinds_with_different_units() -> None:
    params = SettlementParams(carbon=PARAMS.carbon, energy=UnitPenalty(1, 10_000, "e"))
    facts = [_carbon(10), ObligationFacts("e", "E-o", "南昌", "4411", ObligationKind.ENERGY, 1_000)]
    totals = totals_by(settle(facts, params, DEADLINE), "city")
    assert [(t.kind, t.obligation) for t in totals] == [(ObligationKind.CARBON, 10), (ObligationKind.ENERGY, 1_000)]


def test_reference_price_is_volume_weighted_and_rounded_half_up() -> None:
    assert reference_price_fen(turnover_fen=9_800 * 3 + 1, volume=2) == 14_701  # 14700.5 → 14701
    with pytest.raises(ValueError):
        reference_price_fen(100, 0)


def test_surrender_at_utc_instant_is_compared_as_an_instant() -> None:
    at = datetime(2024, 12, 31, 16, 0, tzinfo=UTC)  # 2025-01-01 00:00 in Shanghai: late
    [r] = settle([_carbon(1, SurrenderFact(1, at))], PARAMS, DEADLINE)
    assert (r.surrendered_late, r.timeliness, r.status) == (1, Timeliness.LATE, Status.COMPLIANT)
