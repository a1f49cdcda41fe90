"""Free allocation of carbon allowances: intensity benchmarks, pre-allocation, true-up and deductions.

Rules (domain.md §4.1; 全国碳排放权交易配额总量设定与分配实施方案):
- intensity-based allocation `benchmark × output × correction` summed over lines; for power 2021–22
  `供电基准值 × 供电量 × 修正系数 + 供热基准值 × 供热量`;
- pre-allocation = a ratio (70 % by default, in basis points) of the previous year's verified emissions;
- true-up (核定) = final allocation − pre-allocated; a negative true-up is a reversal quantity;
- a compliance shortfall is deducted from the next allocation; what does not fit carries forward.

Rounding rule: each function computes its exact result and rounds once, half up, to whole tCO2e (the
rounding is a parameter and is recorded in each result). Benchmarks and corrections are exact decimals
passed in by the caller for the year in question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction

from registry.domain.exact import Exact, Rounding, bps_of, fraction_text, round_to_int, to_fraction

DEFAULT_PRE_ALLOCATION_BPS = 7_000
"""70 % of the previous year's verified emissions (steel, cement, aluminium from 2025). [configurable]"""


@dataclass(frozen=True, slots=True)
class BenchmarkLine:
    """One line of an intensity allocation: benchmark (tCO2 per unit of output) × output × Π corrections."""

    label: str
    benchmark: Exact
    output: Exact
    corrections: tuple[Exact, ...] = field(default=())
    citation: str = ""


@dataclass(frozen=True, slots=True)
class AllocationLine:
    label: str
    exact: Fraction
    correction: Fraction

    @property
    def text(self) -> str:
        return fraction_text(self.exact, 6)


@dataclass(frozen=True, slots=True)
class Allocation:
    """Allowances in whole tCO2e, with each line's exact value and the rounding used."""

    quantity: int
    exact_total: Fraction
    lines: tuple[AllocationLine, ...]
    rounding: Rounding
    rounding_rule: str = "sum of exact lines, rounded once at the end"


def intensity_allocation(lines: Sequence[BenchmarkLine], rounding: Rounding = Rounding.HALF_UP) -> Allocation:
    """`Σ benchmark × output × Π corrections`, rounded once at the end.

    Raises `ValueError` for a negative benchmark, output or correction: these are the authority's tables,
    not user input, and a negative one is a configuration fault.
    """
    out: list[AllocationLine] = []
    for line in lines:
        benchmark = to_fraction(line.benchmark)
        output = to_fraction(line.output)
        correction = Fraction(1)
        for c in line.corrections:
            correction *= to_fraction(c)
        if benchmark < 0 or output < 0 or correction < 0:
            raise ValueError(f"allocation line {line.label!r}: benchmark, output and corrections must be >= 0")
        out.append(AllocationLine(line.label, benchmark * output * correction, correction))
    exact_total = sum((line.exact for line in out), Fraction(0))
    return Allocation(round_to_int(exact_total, rounding), exact_total, tuple(out), rounding)


def power_allocation(
    supply_benchmark_tco2_per_mwh: Exact,
    supply_mwh: Exact,
    supply_corrections: Sequence[Exact],
    heat_benchmark_tco2_per_gj: Exact,
    heat_gj: Exact,
    *,
    rounding: Rounding = Rounding.HALF_UP,
) -> Allocation:
    """Power sector 2021–22: `供电基准值 × 供电量 × 修正系数 + 供热基准值 × 供热量`.

    `supply_corrections` are the correction factors multiplied together (cooling mode, heat-supply ratio,
    load-rate factor, ...). Heat carries no correction, as in the national plan.
    """
    return intensity_allocation(
        [
            BenchmarkLine("供电 power supply", supply_benchmark_tco2_per_mwh, supply_mwh, tuple(supply_corrections)),
            BenchmarkLine("供热 heat supply", heat_benchmark_tco2_per_gj, heat_gj),
        ],
        rounding,
    )


def pre_allocation(
    previous_verified_tco2e: int,
    ratio_bps: int = DEFAULT_PRE_ALLOCATION_BPS,
    rounding: Rounding = Rounding.HALF_UP,
) -> int:
    """Pre-allocation = previous year's verified emissions × ratio (basis points), rounded once."""
    if previous_verified_tco2e < 0:
        raise ValueError("verified emissions cannot be negative")
    if not 0 <= ratio_bps <= 10_000:
        raise ValueError(f"pre-allocation ratio must be 0..10000 bps, got {ratio_bps}")
    return bps_of(previous_verified_tco2e, ratio_bps, rounding)


class TrueUpDirection(StrEnum):
    ISSUE = "issue"
    """Final allocation exceeds the pre-allocation: allocate the difference."""
    REVERSE = "reverse"
    """Pre-allocation exceeds the final allocation: reverse (claw back) the difference."""
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TrueUp:
    """The true-up (核定) after verification: `delta = final − pre_allocated` as a direction and quantity."""

    final_allocation: int
    pre_allocated: int
    delta: int
    direction: TrueUpDirection
    quantity: int
    """Always >= 0: the units to allocate (issue) or to reverse (reverse)."""


def true_up(final_allocation: int, pre_allocated: int) -> TrueUp:
    """Compare the final allocation with what was pre-allocated; a negative delta becomes a reversal."""
    if final_allocation < 0 or pre_allocated < 0:
        raise ValueError("allocations cannot be negative")
    delta = final_allocation - pre_allocated
    direction = TrueUpDirection.ISSUE if delta > 0 else TrueUpDirection.REVERSE if delta < 0 else TrueUpDirection.NONE
    return TrueUp(final_allocation, pre_allocated, delta, direction, abs(delta))


@dataclass(frozen=True, slots=True)
class Deduction:
    """A shortfall deducted from an allocation: what is issued, what was deducted, what remains owed."""

    allocation_before: int
    owed_before: int
    deducted: int
    allocation_after: int
    owed_after: int


def deduct_from_allocation(allocation: int, owed: int) -> Deduction:
    """Deduct an owed quantity (a previous shortfall) from the next allocation issued.

    Why carry forward instead of going negative: an allocation is units issued, and a negative issuance
    does not exist; the unpaid part stays owed and is deducted from the following allocation.
    """
    if allocation < 0 or owed < 0:
        raise ValueError("allocation and owed quantity must be >= 0")
    deducted = min(allocation, owed)
    return Deduction(allocation, owed, deducted, allocation - deducted, owed - deducted)
