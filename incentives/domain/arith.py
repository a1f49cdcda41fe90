"""Integer arithmetic for incentive amounts: fen, basis points and day keys.

Every amount the incentives engine decides is an integer of fen, and every rate is an integer of basis
points (1 bp = 0.01 %) or an exact ratio. The vector path (`incentives/batch/`, numpy int64) and the
scalar explain path must round identically, so both use the formulas written here and nowhere else:

- a computed benefit is rounded **half up** to the fen (四舍五入, the convention of Chinese tax returns);
- a cap is rounded **down** (a cap must never be exceeded because of rounding);
- a minimum needed to pass a gate is rounded **up** (the smallest whole amount that passes).

All helpers take non-negative operands: money facts are validated as non-negative before they get here.
Dates are compared as integer day keys `yyyymmdd`, so that "five years after 2020-02-29" is the integer
2025-02-29 (20250229): a day that does not exist, which every real day compares correctly against (the
period ends after 28 February and before 1 March). numpy does the same comparison on int64 columns.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

BP = 10_000
"""Basis points in one whole (100 %)."""

MAX_FEN = 10**14
"""The largest money fact accepted: 1 trillion yuan. It keeps `amount × 10000 × 2` inside int64."""


def check_operands(amount: int, numerator: int, denominator: int) -> None:
    """Refuse operands the int64 vector path could not hold or the rounding rules do not define."""
    if amount < 0 or numerator < 0:
        raise ValueError(f"amount and numerator must be >= 0, got {amount} and {numerator}")
    if denominator <= 0:
        raise ValueError(f"denominator must be > 0, got {denominator}")


def mul_div_half_up(amount: int, numerator: int, denominator: int) -> int:
    """`amount × numerator / denominator`, rounded half up to an integer (for benefits)."""
    check_operands(amount, numerator, denominator)
    return (2 * amount * numerator + denominator) // (2 * denominator)


def mul_div_floor(amount: int, numerator: int, denominator: int) -> int:
    """`amount × numerator / denominator`, rounded down (for caps)."""
    check_operands(amount, numerator, denominator)
    return (amount * numerator) // denominator


def mul_div_ceil(amount: int, numerator: int, denominator: int) -> int:
    """`amount × numerator / denominator`, rounded up (for the least amount that passes a gate)."""
    check_operands(amount, numerator, denominator)
    return -((-amount * numerator) // denominator)


def ratio_bp_floor(numerator: int, denominator: int) -> int:
    """The share `numerator / denominator` in basis points, rounded down, for display only.

    Gates never compare this rounded figure: they cross-multiply (`numerator × 10000 >= bp × denominator`)
    so that 4.999 % never passes a 5 % gate.
    """
    if denominator <= 0:
        return 0
    return mul_div_floor(numerator, BP, denominator)


def date_key(day: date) -> int:
    """The day as the integer yyyymmdd (comparable, and the form the vector path uses)."""
    return day.year * 10_000 + day.month * 100 + day.day


def key_date(key: int) -> date:
    """The date of a yyyymmdd key (the key must name a real day)."""
    return date(key // 10_000, key // 100 % 100, key % 100)


def key_text(key: int) -> str:
    """A yyyymmdd key as ISO text, also for keys such as 20250229 that name no real day."""
    return f"{key // 10_000:04d}-{key // 100 % 100:02d}-{key % 100:02d}"


def years_after(key: int, years: int) -> int:
    """The key of the same month and day `years` later (it may name no real day; see the module doc)."""
    return key + years * 10_000


def month_index(key: int) -> int:
    """Months since year 0 of the key's month, so that month windows are integer differences."""
    return (key // 10_000) * 12 + (key // 100 % 100) - 1


MILLI = 1000
"""Thousandths in one unit: a decimal fact (kind `milli`, e.g. an energy intensity of 99.5 kgce/t) is held as
the exact integer of thousandths of its unit (99500), never as a float."""

MILLI_DECIMALS = 3

MILLI_TEXT_MAX = 32
"""The longest decimal text accepted ("-1000000000000.000" is 18 characters; trailing zeros have room)."""

_MILLI_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def parse_milli(raw: object) -> int:
    """The exact thousandths of a decimal given as an int, a `Decimal` or a decimal string ("99.5", "-0.25",
    "117.000"); raises ValueError otherwise. A float is refused even when it looks exact: a JSON number with a
    fraction has already been rounded to binary, so the caller must send the decimal as text. More than three
    decimals are refused unless they are zeros ("100.0010" is 100.001), never rounded; a text longer than
    MILLI_TEXT_MAX characters is refused ("long")."""
    if isinstance(raw, bool):
        raise ValueError("type")
    if isinstance(raw, float):
        raise ValueError("float")
    if isinstance(raw, int):
        return raw * MILLI
    if isinstance(raw, str):
        if len(raw) > MILLI_TEXT_MAX:
            raise ValueError("long")
        text = raw.strip()
        if not _MILLI_TEXT.fullmatch(text):
            raise ValueError("text")
        value = Decimal(text)
    elif isinstance(raw, Decimal):
        if not raw.is_finite():
            raise ValueError("text")
        value = raw
    else:
        raise ValueError("type")
    scaled = value * MILLI
    if scaled != scaled.to_integral_value():
        raise ValueError("decimals")
    return int(scaled)
