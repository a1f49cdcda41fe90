"""Exact arithmetic for compliance rules: factors as exact decimals, one rounding at the end.

Emission factors, benchmarks and ratios are published as decimals (0.5366 tCO2/MWh, 44/12, 70 %). Binary
floats cannot hold them exactly, so every rule in the compliance modules multiplies `fractions.Fraction`
values and rounds exactly once, at the end, to an integer of the base unit (1 tCO2e, 1 kgce, 1 kg). The
rounding rule is named by a `Rounding` value and recorded in every result, so an explanation can state it.

Also here: `Dated`, a parameter value with its validity window and citation, and `in_force`, which picks
the value that applies on a day. Domain code never reads a clock: the caller passes the day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Generic, TypeVar

from core.figures import quantity_plain

Exact = Decimal | int | Fraction
"""An exact number: a `Decimal` as published, an `int`, or a `Fraction` (e.g. 44/12). Never a float."""

T = TypeVar("T")


class Rounding(StrEnum):
    """How an exact result becomes an integer of the base unit.

    `half_up` rounds halves away from zero (Decimal's ROUND_HALF_UP), the convention of the national
    accounting guidelines' reporting tables; `floor` and `ceiling` exist for rules that must never
    over-allocate or under-charge, and are chosen explicitly where used.
    """

    HALF_UP = "half_up"
    FLOOR = "floor"
    CEILING = "ceiling"


def to_fraction(value: Exact) -> Fraction:
    """Convert an exact number to a `Fraction`, refusing floats, NaN and infinities.

    A float is refused even though `Fraction(float)` would succeed, because 0.1 as a float is not 0.1 and
    the error would flow silently into a fine or an allocation.
    """
    # bool is an int subclass; a True factor is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, Decimal | int | Fraction):
        raise TypeError(f"exact number required (Decimal, int or Fraction), got {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"finite number required, got {value}")
    return Fraction(value)


def round_to_int(value: Fraction, rounding: Rounding = Rounding.HALF_UP) -> int:
    """Round an exact value once to an integer by the named rule."""
    if rounding is Rounding.FLOOR:
        return math.floor(value)
    if rounding is Rounding.CEILING:
        return math.ceil(value)
    # Half away from zero: 2.5 -> 3, -2.5 -> -3, matching Decimal ROUND_HALF_UP.
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def fraction_text(value: Fraction, places: int = 6) -> str:
    """Show an exact value as a decimal string with `places` decimals (half up), for explanations only."""
    return quantity_plain(round_to_int(value * 10**places), places)


def div_round(numerator: int, denominator: int, rounding: Rounding = Rounding.HALF_UP) -> int:
    """`numerator / denominator` rounded by the named rule, in integers only (no Fraction on hot paths)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if rounding is Rounding.FLOOR:
        return numerator // denominator
    if rounding is Rounding.CEILING:
        return -(-numerator // denominator)
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def bps_of(quantity: int, bps: int, rounding: Rounding) -> int:
    """`quantity × bps / 10000` rounded by the named rule (1 bp = 0.01 %)."""
    if bps < 0:
        raise ValueError(f"basis points must be >= 0, got {bps}")
    return div_round(quantity * bps, 10_000, rounding)


@dataclass(frozen=True, slots=True)
class Dated(Generic[T]):
    """A parameter value with the days it applies and the text that makes it law.

    `valid_to` is exclusive (the first day it no longer applies); None means open-ended.
    """

    value: T
    valid_from: date
    valid_to: date | None
    citation: str
    note: str = ""

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def in_force(values: Sequence[Dated[T]], day: date) -> Dated[T]:
    """Return the one dated value that applies on `day`.

    Raises `LookupError` if none or more than one applies, because a gap or an overlap in a parameter
    history is a configuration error that must not be resolved by picking one silently.
    """
    hits = [v for v in values if v.applies_on(day)]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} parameter values apply on {day.isoformat()}, expected exactly 1")
    return hits[0]
