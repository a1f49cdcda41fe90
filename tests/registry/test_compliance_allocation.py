"""Tests of registry/domain/allocation.py."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.allocation import (
    BenchmarkLine,
    TrueUpDirection,
    deduct_from_allocation,
    intensity_allocation,
    power_allocation,
    pre_allocation,
    true_up,
)
from registry.domain.exact import Rounding


def test_corrections_multiply_and_lines_add_before_one_rounding() -> None:
    result = intensity_allocation(
        [
            BenchmarkLine("a", Decimal("0.5"), Decimal("3"), (Decimal("0.5"), Decimal("2"))),
            BenchmarkLine("b", Decimal("0.5"), Decimal("1")),
        ]
    )
    assert [line.exact for line in result.lines] == [Fraction(3, 2), Fraction(1, 2)]
    assert result.lines[0].correction == 1
    assert result.quantity == 2
    assert result.rounding is Rounding.HALF_UP


def test_rounding_rule_is_a_parameter() -> None:
    lines = [BenchmarkLine("a", Decimal("0.5"), Decimal("5"))]
    assert intensity_allocation(lines).quantity == 3
    assert intensity_allocation(lines, Rounding.FLOOR).quantity == 2


def test_power_allocation_adds_heat_without_correction() -> None:
    result = power_allocation(Decimal("1"), Decimal("100"), [Decimal("0.9")], Decimal("0.1"), Decimal("50"))
    assert result.quantity == 95
    assert [line.label for line in result.lines] == ["供电 power supply", "供热 heat supply"]


def test_negative_benchmark_output_or_correction_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        intensity_allocation([BenchmarkLine("a", Decimal("1"), Decimal("-1"))])
    with pytest.raises(ValueError, match="must be >= 0"):
        intensity_allocation([BenchmarkLine("a", Decimal("1"), Decimal("1"), (Decimal("-0.1"),))])


def test_pre_allocation_ratio_is_in_basis_points_and_validated() -> None:
    assert pre_allocation(1_000_000) == 700_000
    assert pre_allocation(1_000_000, 8_000) == 800_000
    assert pre_allocation(3, 5_000) == 2  # 1.5 rounds half up
    assert pre_allocation(3, 5_000, Rounding.FLOOR) == 1
    with pytest.raises(ValueError):
        pre_allocation(1, 10_001)
    with pytest.raises(ValueError):
        pre_allocation(-1)


def test_equal_true_up_is_none() -> None:
    t = true_up(100, 100)
    assert (t.direction, t.quantity, t.delta) == (TrueUpDirection.NONE, 0, 0)


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_true_up_quantity_restores_the_final_allocation(final: int, pre: int) -> None:
    t = true_up(final, pre)
    sign = {TrueUpDirection.ISSUE: 1, TrueUpDirection.REVERSE: -1, TrueUpDirection.NONE: 0}[t.direction]
    assert pre + sign * t.quantity == final
    assert t.quantity >= 0


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_deduction_never_goes_negative_and_conserves_what_is_owed(allocation: int, owed: int) -> None:
    d = deduct_from_allocation(allocation, owed)
    assert d.allocation_after >= 0
    assert d.owed_after >= 0
    assert d.deducted + d.allocation_after == allocation
    assert d.deducted + d.owed_after == owed
    assert d.owed_after == 0 or d.allocation_after == 0
