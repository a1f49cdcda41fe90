"""Emissions, energy and discharge accounting: activity data in, one verified-ready integer out.

Carbon follows the national accounting method (企业温室气体排放核算与报告指南; GB/T 32151 series):
- fuel combustion: `fuel × NCV × carbon content per unit heat × oxidation rate × 44/12`;
- process emissions: `activity × factor` (e.g. clinker tonnes × tCO2 per tonne of clinker);
- purchased electricity: `MWh × grid factor`; purchased heat: `GJ × heat factor`.

Energy is comprehensive energy consumption (GB/T 2589-2020 综合能耗计算通则) in kgce, with electricity
converted either at the calorific value 0.1229 kgce/kWh (当量值) or a published primary-energy factor
(等价值); the result says which factor it used. Discharge is a quantity per pollutant in kg.

Rounding rule (stated in every result): the exact sum of all lines is rounded half up to a whole base
unit once, at the end; lines are never rounded, so splitting a fuel over several rows never changes the
total. Factors are exact decimals chosen by the caller for the reporting year (see `exact.in_force`).
Every line keeps its factors and exact value so the figure can be explained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from registry.domain.exact import Exact, Rounding, fraction_text, round_to_int, to_fraction
from registry.domain.violations import Rejected, Violation

CO2_PER_C = Fraction(44, 12)
"""Mass ratio of CO2 to carbon, kept as the exact fraction the guidelines write (not 3.667)."""

# Units a report may use, by dimension, with the size of each in the dimension's smallest unit. A line
# is converted into the unit its factor is published in; a unit of another dimension is an error.
_UNITS: dict[str, tuple[str, int]] = {
    "kg": ("mass", 1),
    "t": ("mass", 1_000),
    "Nm3": ("gas_volume", 1),
    "m3": ("gas_volume", 1),
    "10^4Nm3": ("gas_volume", 10_000),
    "万Nm3": ("gas_volume", 10_000),
    "万m3": ("gas_volume", 10_000),
    "kWh": ("electricity", 1),
    "MWh": ("electricity", 1_000),
    "MJ": ("heat", 1),
    "GJ": ("heat", 1_000),
    "TJ": ("heat", 1_000_000),
}

KNOWN_UNITS = frozenset(_UNITS)


def convert(quantity: Fraction, from_unit: str, to_unit: str) -> Fraction | None:
    """Convert between units of one dimension exactly; None if either is unknown or they differ."""
    src = _UNITS.get(from_unit)
    dst = _UNITS.get(to_unit)
    if src is None or dst is None or src[0] != dst[0]:
        return None
    return quantity * src[1] / dst[1]


class LineType(StrEnum):
    """Kinds of carbon activity line in a report."""

    FUEL = "fuel"
    PROCESS = "process"
    ELECTRICITY = "electricity"
    HEAT = "heat"


PURCHASED = "purchased"
"""Item code of purchased electricity or heat lines (an empty item means the same)."""


@dataclass(frozen=True, slots=True)
class ActivityLine:
    """One row of carbon activity data: e.g. fuel raw_coal 12,345.6 t."""

    line_type: LineType
    item: str
    quantity: Exact
    unit: str


@dataclass(frozen=True, slots=True)
class FuelFactors:
    """Factors of one fuel, each an exact decimal as published.

    `ncv_gj_per_unit` is the net calorific value per `unit` (GJ/t for solids and liquids, GJ/10^4Nm3 for
    gases); `carbon_tc_per_gj` is carbon content per unit heat in tC/GJ (tables often print tC/TJ: divide
    by 1000); `oxidation_rate` is a fraction (0.98, not 98).
    """

    ncv_gj_per_unit: Exact
    carbon_tc_per_gj: Exact
    oxidation_rate: Exact
    unit: str
    citation: str = ""


@dataclass(frozen=True, slots=True)
class ProcessFactor:
    """Emission factor of one process in tCO2 per `unit` of activity (e.g. per t of clinker)."""

    tco2_per_unit: Exact
    unit: str
    citation: str = ""


@dataclass(frozen=True, slots=True)
class CarbonFactors:
    """The factor set for one reporting year, chosen by the caller from dated parameters."""

    fuels: Mapping[str, FuelFactors]
    processes: Mapping[str, ProcessFactor]
    grid_tco2_per_mwh: Exact
    heat_tco2_per_gj: Exact
    version: str
    citation: str = ""


@dataclass(frozen=True, slots=True)
class LineEmission:
    """One line's exact result and the factors that produced it, for the explanation table."""

    index: int
    line_type: LineType
    item: str
    quantity: Fraction
    unit: str
    formula: str
    factors: tuple[tuple[str, str], ...]
    tco2e_exact: Fraction

    @property
    def tco2e_text(self) -> str:
        return fraction_text(self.tco2e_exact, 6)


@dataclass(frozen=True, slots=True)
class CarbonAccount:
    """Total emissions in whole tCO2e (`total_tco2e`) with every line and the rounding rule used."""

    total_tco2e: int
    exact_total: Fraction
    lines: tuple[LineEmission, ...]
    rounding: Rounding
    factors_version: str
    rounding_rule: str = "sum of exact lines, rounded once at the end"


def _quantity_violations(index: int, quantity: Exact) -> tuple[Fraction | None, list[Violation]]:
    """Parse a line quantity exactly; negative activity is refused (no line may reduce a total)."""
    field = f"lines[{index}].quantity"
    try:
        q = to_fraction(quantity)
    except (TypeError, ValueError) as exc:
        return None, [Violation("not-a-number", field, f"quantity must be an exact number: {exc}")]
    if q < 0:
        return None, [
            Violation(
                "negative-quantity",
                field,
                "activity data cannot be negative; report consumption as a positive quantity",
                (("quantity", fraction_text(q, 6)),),
            )
        ]
    return q, []


def _unit_violation(index: int, unit: str, expected: str) -> Violation:
    return Violation(
        "unit-mismatch",
        f"lines[{index}].unit",
        f"unit {unit!r} cannot be converted to {expected!r}, the unit of this factor",
        (("unit", unit), ("expected", expected)),
    )


def account_carbon(
    lines: Sequence[ActivityLine],
    factors: CarbonFactors,
    rounding: Rounding = Rounding.HALF_UP,
) -> CarbonAccount | Rejected:
    """Compute emissions in tCO2e from activity lines; every bad line is reported, nothing partial."""
    violations: list[Violation] = []
    results: list[LineEmission] = []
    grid = to_fraction(factors.grid_tco2_per_mwh)
    heat = to_fraction(factors.heat_tco2_per_gj)
    for i, line in enumerate(lines):
        q, bad = _quantity_violations(i, line.quantity)
        violations.extend(bad)
        line_type = line.line_type
        if line_type is LineType.FUEL:
            fuel = factors.fuels.get(line.item)
            if fuel is None:
                violations.append(_unknown_item(i, "fuel", line.item, factors.fuels))
                continue
            qty = None if q is None else convert(q, line.unit, fuel.unit)
            if q is not None and qty is None:
                violations.append(_unit_violation(i, line.unit, fuel.unit))
            if qty is None:
                continue
            ncv = to_fraction(fuel.ncv_gj_per_unit)
            cc = to_fraction(fuel.carbon_tc_per_gj)
            of = to_fraction(fuel.oxidation_rate)
            results.append(
                LineEmission(
                    i,
                    line_type,
                    line.item,
                    qty,
                    fuel.unit,
                    "quantity × NCV × carbon content × oxidation rate × 44/12",
                    (
                        ("ncv_gj_per_unit", str(fuel.ncv_gj_per_unit)),
                        ("carbon_tc_per_gj", str(fuel.carbon_tc_per_gj)),
                        ("oxidation_rate", str(fuel.oxidation_rate)),
                        ("co2_per_c", "44/12"),
                        ("citation", fuel.citation),
                    ),
                    qty * ncv * cc * of * CO2_PER_C,
                )
            )
        elif line_type is LineType.PROCESS:
            proc = factors.processes.get(line.item)
            if proc is None:
                violations.append(_unknown_item(i, "process", line.item, factors.processes))
                continue
            qty = None if q is None else convert(q, line.unit, proc.unit)
            if q is not None and qty is None:
                violations.append(_unit_violation(i, line.unit, proc.unit))
            if qty is None:
                continue
            results.append(
                LineEmission(
                    i,
                    line_type,
                    line.item,
                    qty,
                    proc.unit,
                    "quantity × process factor",
                    (("tco2_per_unit", str(proc.tco2_per_unit)), ("citation", proc.citation)),
                    qty * to_fraction(proc.tco2_per_unit),
                )
            )
        else:
            # Purchased electricity and heat share one shape: quantity in the factor's unit × factor.
            unit, factor, name, published = (
                ("MWh", grid, "grid_tco2_per_mwh", factors.grid_tco2_per_mwh)
                if line_type is LineType.ELECTRICITY
                else ("GJ", heat, "heat_tco2_per_gj", factors.heat_tco2_per_gj)
            )
            if line.item not in ("", PURCHASED):
                violations.append(_unknown_item(i, line_type.value, line.item, {PURCHASED: None}))
                continue
            qty = None if q is None else convert(q, line.unit, unit)
            if q is not None and qty is None:
                violations.append(_unit_violation(i, line.unit, unit))
            if qty is None:
                continue
            results.append(
                LineEmission(
                    i,
                    line_type,
                    PURCHASED,
                    qty,
                    unit,
                    f"quantity × {name}",
                    ((name, str(published)), ("citation", factors.citation)),
                    qty * factor,
                )
            )
    if violations:
        return Rejected(tuple(violations))
    exact_total = sum((r.tco2e_exact for r in results), Fraction(0))
    return CarbonAccount(
        total_tco2e=round_to_int(exact_total, rounding),
        exact_total=exact_total,
        lines=tuple(results),
        rounding=rounding,
        factors_version=factors.version,
    )


def _unknown_item(index: int, kind: str, item: str, known: Mapping[str, object]) -> Violation:
    return Violation(
        f"unknown-{kind}" if kind in ("fuel", "process") else "unknown-item",
        f"lines[{index}].item",
        f"unknown {kind} code {item!r}; use one of: {', '.join(sorted(known))}",
        (("item", item),),
    )


# ---------------------------------------------------------------------------------------------------
# Energy (用能): comprehensive energy consumption in kgce.


class ElectricityBasis(StrEnum):
    """How electricity becomes standard coal.

    `calorific` (当量值) is the heat content of electricity itself, 0.1229 kgce/kWh (GB/T 2589-2020);
    `equivalent` (等价值) is the coal burnt to generate it, a factor published yearly. Energy-use rights
    are measured as 等价值 (domain.md §2), so the basis of a verified figure must be recorded.
    """

    CALORIFIC = "calorific"
    EQUIVALENT = "equivalent"


ELECTRICITY_CALORIFIC_KGCE_PER_KWH = Decimal("0.1229")
"""当量值 of electricity, GB/T 2589-2020 综合能耗计算通则, 附录 A."""


@dataclass(frozen=True, slots=True)
class ElectricityConversion:
    """The electricity factor actually used, with its basis, recorded in every energy result."""

    basis: ElectricityBasis
    kgce_per_kwh: Exact
    citation: str

    @property
    def kgce_per_mwh(self) -> Fraction:
        return to_fraction(self.kgce_per_kwh) * 1000


def electricity_conversion(
    basis: ElectricityBasis, equivalent_kgce_per_kwh: Exact | None = None, citation: str = ""
) -> ElectricityConversion:
    """Choose the electricity factor: 0.1229 for 当量值, or the given published factor for 等价值."""
    if basis is ElectricityBasis.CALORIFIC:
        if equivalent_kgce_per_kwh is not None:
            raise ValueError("the calorific basis (当量值) is fixed at 0.1229 kgce/kWh; do not pass a factor")
        return ElectricityConversion(
            basis, ELECTRICITY_CALORIFIC_KGCE_PER_KWH, citation or "GB/T 2589-2020 附录A 电力当量值"
        )
    if equivalent_kgce_per_kwh is None or to_fraction(equivalent_kgce_per_kwh) <= 0:
        raise ValueError("the equivalent basis (等价值) needs the published positive kgce/kWh factor")
    return ElectricityConversion(basis, equivalent_kgce_per_kwh, citation)


ELECTRICITY = "electricity"
"""Item code of electricity in energy lines; converted by the `ElectricityConversion`, not a coefficient."""


@dataclass(frozen=True, slots=True)
class EnergyCoefficient:
    """Standard-coal coefficient (折标系数) of one energy source: kgce per `unit`."""

    kgce_per_unit: Exact
    unit: str
    citation: str = ""


@dataclass(frozen=True, slots=True)
class EnergyLine:
    """One row of energy data: e.g. raw_coal 5,000 t, electricity 1,200,000 kWh."""

    item: str
    quantity: Exact
    unit: str


@dataclass(frozen=True, slots=True)
class EnergyLineResult:
    index: int
    item: str
    quantity: Fraction
    unit: str
    kgce_per_unit: str
    kgce_exact: Fraction


@dataclass(frozen=True, slots=True)
class EnergyAccount:
    """Comprehensive energy consumption in whole kgce, with the electricity factor that was used."""

    total_kgce: int
    exact_total: Fraction
    lines: tuple[EnergyLineResult, ...]
    electricity: ElectricityConversion
    rounding: Rounding
    rounding_rule: str = "sum of exact lines, rounded once at the end"


def account_energy(
    lines: Sequence[EnergyLine],
    coefficients: Mapping[str, EnergyCoefficient],
    electricity: ElectricityConversion,
    rounding: Rounding = Rounding.HALF_UP,
) -> EnergyAccount | Rejected:
    """Compute comprehensive energy consumption in kgce; every bad line is reported, nothing partial."""
    violations: list[Violation] = []
    results: list[EnergyLineResult] = []
    for i, line in enumerate(lines):
        q, bad = _quantity_violations(i, line.quantity)
        violations.extend(bad)
        if line.item == ELECTRICITY:
            unit, factor, factor_text = (
                "kWh",
                to_fraction(electricity.kgce_per_kwh),
                str(electricity.kgce_per_kwh),
            )
        else:
            coefficient = coefficients.get(line.item)
            if coefficient is None:
                violations.append(
                    Violation(
                        "unknown-item",
                        f"lines[{i}].item",
                        f"unknown energy source {line.item!r}; use one of: "
                        f"{', '.join(sorted([*coefficients, ELECTRICITY]))}",
                        (("item", line.item),),
                    )
                )
                continue
            unit = coefficient.unit
            factor, factor_text = to_fraction(coefficient.kgce_per_unit), str(coefficient.kgce_per_unit)
        qty = None if q is None else convert(q, line.unit, unit)
        if q is not None and qty is None:
            violations.append(_unit_violation(i, line.unit, unit))
        if qty is None:
            continue
        results.append(EnergyLineResult(i, line.item, qty, unit, factor_text, qty * factor))
    if violations:
        return Rejected(tuple(violations))
    exact_total = sum((r.kgce_exact for r in results), Fraction(0))
    return EnergyAccount(round_to_int(exact_total, rounding), exact_total, tuple(results), electricity, rounding)


# ---------------------------------------------------------------------------------------------------
# Discharge (排污): quantity per pollutant in kg.


@dataclass(frozen=True, slots=True)
class DischargeLine:
    """One row of discharge data: e.g. SO2 12.5 t."""

    pollutant: str
    quantity: Exact
    unit: str


@dataclass(frozen=True, slots=True)
class DischargeAccount:
    """Whole kg per pollutant, each pollutant's exact sum rounded once (pollutants sorted by code)."""

    kg_by_pollutant: tuple[tuple[str, int], ...]
    exact_kg_by_pollutant: tuple[tuple[str, Fraction], ...]
    rounding: Rounding
    rounding_rule: str = "per pollutant: sum of exact lines, rounded once at the end"

    def kg(self, pollutant: str) -> int:
        return dict(self.kg_by_pollutant).get(pollutant, 0)


def account_discharge(
    lines: Sequence[DischargeLine],
    pollutants: frozenset[str],
    rounding: Rounding = Rounding.HALF_UP,
) -> DischargeAccount | Rejected:
    """Sum discharge per pollutant in kg; the pollutant list is the province's parameter."""
    violations: list[Violation] = []
    totals: dict[str, Fraction] = {}
    for i, line in enumerate(lines):
        q, bad = _quantity_violations(i, line.quantity)
        violations.extend(bad)
        if line.pollutant not in pollutants:
            violations.append(
                Violation(
                    "unknown-pollutant",
                    f"lines[{i}].pollutant",
                    f"unknown pollutant {line.pollutant!r}; use one of: {', '.join(sorted(pollutants))}",
                    (("pollutant", line.pollutant),),
                )
            )
            continue
        kg = None if q is None else convert(q, line.unit, "kg")
        if q is not None and kg is None:
            violations.append(_unit_violation(i, line.unit, "kg"))
        if kg is None:
            continue
        totals[line.pollutant] = totals.get(line.pollutant, Fraction(0)) + kg
    if violations:
        return Rejected(tuple(violations))
    ordered = sorted(totals.items())
    return DischargeAccount(
        tuple((p, round_to_int(v, rounding)) for p, v in ordered),
        tuple(ordered),
        rounding,
    )
