"""Tests of registry/domain/accounting.py, exact.py and factor_defaults.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.accounting import (
    ELECTRICITY_CALORIFIC_KGCE_PER_KWH,
    ActivityLine,
    CarbonAccount,
    CarbonFactors,
    DischargeLine,
    ElectricityBasis,
    EnergyLine,
    FuelFactors,
    LineType,
    ProcessFactor,
    account_carbon,
    account_discharge,
    account_energy,
    convert,
    electricity_conversion,
)
from registry.domain.exact import Dated, Rounding, div_round, fraction_text, in_force, round_to_int, to_fraction
from registry.domain.factor_defaults import (
    DEFAULT_ENERGY_COEFFICIENTS,
    DEFAULT_POLLUTANTS,
    default_carbon_factors,
)
from registry.domain.violations import Rejected

FACTORS = default_carbon_factors(2022)


def _total(lines: list[ActivityLine], factors: CarbonFactors = FACTORS) -> int:
    result = account_carbon(lines, factors)
    assert isinstance(result, CarbonAccount), result
    return result.total_tco2e


def test_fuel_line_applies_ncv_carbon_content_oxidation_and_44_over_12_exactly() -> None:
    factors = CarbonFactors(
        fuels={"x": FuelFactors(Decimal("10"), Decimal("0.03"), Decimal("1"), "t")},
        processes={},
        grid_tco2_per_mwh=Decimal("0.5"),
        heat_tco2_per_gj=Decimal("0.1"),
        version="test",
    )
    result = account_carbon([ActivityLine(LineType.FUEL, "x", Decimal("12"), "t")], factors)
    assert isinstance(result, CarbonAccount)
    # 12 t × 10 GJ/t × 0.03 tC/GJ × 1 × 44/12 = 13.2 tCO2 exactly, which a float 3.667 would miss.
    assert result.exact_total == Fraction(132, 10)
    assert result.total_tco2e == 13
    assert dict(result.lines[0].factors)["co2_per_c"] == "44/12"


def test_kg_and_kwh_lines_convert_to_the_factor_unit() -> None:
    in_tonnes = _total([ActivityLine(LineType.FUEL, "raw_coal", Decimal("1000"), "t")])
    in_kg = _total([ActivityLine(LineType.FUEL, "raw_coal", Decimal("1000000"), "kg")])
    assert in_tonnes == in_kg == 1900
    assert _total([ActivityLine(LineType.ELECTRICITY, "purchased", Decimal("1000000"), "kWh")]) == 537


def test_unit_of_another_dimension_is_refused() -> None:
    result = account_carbon([ActivityLine(LineType.FUEL, "raw_coal", Decimal("1"), "MWh")], FACTORS)
    assert isinstance(result, Rejected)
    assert result.codes == ("unit-mismatch",)
    assert result.violations[0].field == "lines[0].unit"


def test_every_bad_line_is_reported_not_just_the_first() -> None:
    result = account_carbon(
        [
            ActivityLine(LineType.FUEL, "peat", Decimal("1"), "t"),
            ActivityLine(LineType.PROCESS, "lime", Decimal("1"), "t"),
            ActivityLine(LineType.HEAT, "exported", Decimal("1"), "GJ"),
            ActivityLine(LineType.ELECTRICITY, "", Decimal("-1"), "MWh"),
        ],
        FACTORS,
    )
    assert isinstance(result, Rejected)
    assert result.codes == ("unknown-fuel", "unknown-process", "unknown-item", "negative-quantity")
    assert [v.field for v in result.violations] == [
        "lines[0].item",
        "lines[1].item",
        "lines[2].item",
        "lines[3].quantity",
    ]


def test_float_quantity_is_refused_because_it_is_not_exact() -> None:
    result = account_carbon([ActivityLine(LineType.ELECTRICITY, "", 0.1, "MWh")], FACTORS)  # type: ignore[arg-type]
    assert isinstance(result, Rejected)
    assert result.codes == ("not-a-number",)
    with pytest.raises(TypeError):
        to_fraction(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        to_fraction(Decimal("NaN"))
    with pytest.raises(TypeError):
        to_fraction(True)


@given(
    st.lists(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False), min_size=1, max_size=6),
)
def test_splitting_activity_over_rows_never_changes_the_total(parts: list[Decimal]) -> None:
    # Rounding happens once at the end, so reporting one fuel in several rows gives the same figure.
    split = [ActivityLine(LineType.FUEL, "diesel", p, "t") for p in parts]
    whole = [ActivityLine(LineType.FUEL, "diesel", sum(parts, Decimal(0)), "t")]
    assert _total(split) == _total(whole)


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=1, max_value=1000))
def test_round_half_up_matches_decimal_round_half_up(numerator: int, denominator: int) -> None:
    value = Fraction(numerator, denominator)
    expected = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    # Decimal division is inexact for some denominators; compare only where it is exact or not at a half.
    if Fraction(Decimal(numerator) / Decimal(denominator)) == value:
        assert round_to_int(value) == int(expected)
    assert round_to_int(value, Rounding.FLOOR) <= value <= round_to_int(value, Rounding.CEILING)


def test_round_half_up_goes_away_from_zero() -> None:
    assert round_to_int(Fraction(5, 2)) == 3
    assert round_to_int(Fraction(-5, 2)) == -3
    assert round_to_int(Fraction(249, 100)) == 2
    assert fraction_text(Fraction(-1, 3), 3) == "-0.333"


def test_energy_reports_which_electricity_factor_it_used() -> None:
    lines = [EnergyLine("electricity", Decimal("1000"), "kWh"), EnergyLine("natural_gas", Decimal("100"), "m3")]
    calorific = account_energy(lines, DEFAULT_ENERGY_COEFFICIENTS, electricity_conversion(ElectricityBasis.CALORIFIC))
    assert not isinstance(calorific, Rejected)
    assert calorific.electricity.basis is ElectricityBasis.CALORIFIC
    assert calorific.electricity.kgce_per_kwh == ELECTRICITY_CALORIFIC_KGCE_PER_KWH
    assert calorific.total_kgce == 244  # 122.9 + 121.43 = 244.33
    equivalent = account_energy(
        lines,
        DEFAULT_ENERGY_COEFFICIENTS,
        electricity_conversion(ElectricityBasis.EQUIVALENT, Decimal("0.2970"), "published 2024"),
    )
    assert not isinstance(equivalent, Rejected)
    assert equivalent.electricity.basis is ElectricityBasis.EQUIVALENT
    assert equivalent.total_kgce == 418  # 297 + 121.43


def test_electricity_conversion_refuses_a_missing_or_contradictory_factor() -> None:
    with pytest.raises(ValueError, match="equivalent"):
        electricity_conversion(ElectricityBasis.EQUIVALENT)
    with pytest.raises(ValueError, match="fixed"):
        electricity_conversion(ElectricityBasis.CALORIFIC, Decimal("0.3"))


def test_energy_unknown_source_is_refused() -> None:
    result = account_energy(
        [EnergyLine("hydrogen", Decimal("1"), "kg")],
        DEFAULT_ENERGY_COEFFICIENTS,
        electricity_conversion(ElectricityBasis.CALORIFIC),
    )
    assert isinstance(result, Rejected)
    assert result.codes == ("unknown-item",)


def test_discharge_is_summed_per_pollutant_in_kg_and_rounded_once() -> None:
    result = account_discharge(
        [
            DischargeLine("SO2", Decimal("1.2"), "t"),
            DischargeLine("SO2", Decimal("0.4"), "kg"),
            DischargeLine("SO2", Decimal("0.4"), "kg"),
            DischargeLine("NOx", Decimal("15.5"), "kg"),
        ],
        DEFAULT_POLLUTANTS,
    )
    assert not isinstance(result, Rejected)
    assert result.kg_by_pollutant == (("NOx", 16), ("SO2", 1201))
    assert result.kg("COD") == 0


def test_discharge_unknown_pollutant_and_bad_unit_are_refused() -> None:
    result = account_discharge(
        [DischargeLine("CO2", Decimal("1"), "t"), DischargeLine("SO2", Decimal("1"), "MWh")],
        DEFAULT_POLLUTANTS,
    )
    assert isinstance(result, Rejected)
    assert result.codes == ("unknown-pollutant", "unit-mismatch")


def test_process_factor_is_applied_per_unit() -> None:
    factors = CarbonFactors({}, {"clinker": ProcessFactor(Decimal("0.5"), "t")}, 0, 0, "t")
    assert _total([ActivityLine(LineType.PROCESS, "clinker", 3, "t")], factors) == 2  # 1.5 rounds up


def test_convert_is_exact_and_refuses_other_dimensions() -> None:
    assert convert(Fraction(1), "MWh", "kWh") == 1000
    assert convert(Fraction(1), "Nm3", "10^4Nm3") == Fraction(1, 10_000)
    assert convert(Fraction(1), "t", "GJ") is None
    assert convert(Fraction(1), "bbl", "t") is None


def test_dated_parameters_pick_exactly_one_value_and_refuse_gaps_and_overlaps() -> None:
    history = (
        Dated(1, date(2022, 1, 1), date(2023, 1, 1), "a"),
        Dated(2, date(2023, 1, 1), None, "b"),
    )
    assert in_force(history, date(2022, 12, 31)).value == 1
    assert in_force(history, date(2023, 1, 1)).value == 2
    with pytest.raises(LookupError):
        in_force(history, date(2021, 6, 1))
    with pytest.raises(LookupError):
        in_force((*history, Dated(3, date(2023, 6, 1), None, "c")), date(2024, 1, 1))


def test_default_factors_exist_only_for_years_with_a_published_grid_factor() -> None:
    assert default_carbon_factors(2022).grid_tco2_per_mwh == Decimal("0.5366")
    with pytest.raises(LookupError):
        default_carbon_factors(2030)


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6), st.sampled_from(list(Rounding)))
def test_integer_division_rounding_agrees_with_exact_rounding(
    numerator: int, denominator: int, rounding: Rounding
) -> None:
    assert div_round(numerator, denominator, rounding) == round_to_int(Fraction(numerator, denominator), rounding)
