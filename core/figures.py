"""How an amount of money or a quantity is written: the one place that turns an integer of a base unit into text.

Money is an integer of fen, a quantity an integer of base units of which `10**scale` make one display unit
(scale 0: tCO2e, certificates; scale 3: kgce of a tce, kg of a t). Every amount has two written forms:

- human, for documents, pages, PDFs and messages: thousands separators and every decimal of the unit,
  `yuan(123456789)` → "1,234,567.89", `yuan(123456789, unit=True)` → "1,234,567.89 元",
  `quantity(17013500, 3)` → "17,013.500";
- machine, for JSON fields and CSV columns: no separators, so that the text parses back
  (`core.quantity.parse_amount` takes it as input), `yuan_plain(123456789)` → "1234567.89".

Negative amounts (a debit on a statement) keep their sign: `yuan(-5)` → "-0.05". Basis points are written as a
percentage with two decimals: `percent(1250)` → "12.50%". A decimal measure (an energy intensity of 99.5 kgce/t
held as 99500 thousandths) is written as its shortest exact decimal by `decimal_plain`.

Integer arithmetic only: no float or Decimal, so any amount up to the 64-bit limit and beyond is exact. This
module imports only the standard library, so the pure `domain` packages may use it (the import-linter contract
"Domain modules are pure" names it as the one exception; tests/core/test_figures.py keeps it pure).
No other module formats money or quantities by hand: tests/core/test_figures.py fails on a new copy.
"""

from __future__ import annotations

YUAN = "元"
FEN_SCALE = 2
BP_SCALE = 2
"""Basis points in one percent is 10**BP_SCALE: 1250 bp is 12.50 %."""


def _check(base: int, scale: int) -> None:
    # bool is an int in Python; True must not print as 0.01.
    if isinstance(base, bool) or not isinstance(base, int):
        raise TypeError(f"an amount is an int of its base unit, got {type(base).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError(f"scale must be a whole number >= 0, got {scale!r}")


def fixed(base: int, scale: int, *, grouped: bool) -> str:
    """`base` base units in display units with exactly `scale` decimals; `grouped` adds thousands separators."""
    if type(base) is not int or type(scale) is not int or scale < 0:  # the common case checked in one line
        _check(base, scale)
    sign = "-" if base < 0 else ""
    whole, frac = divmod(abs(base), 10**scale)
    text = f"{whole:,}" if grouped else str(whole)
    return f"{sign}{text}" if scale == 0 else f"{sign}{text}.{frac:0{scale}d}"


def yuan(fen: int, *, unit: bool = False) -> str:
    """Human form of money: 123456789 → "1,234,567.89" (with `unit`, "1,234,567.89 元")."""
    text = fixed(fen, FEN_SCALE, grouped=True)
    return f"{text} {YUAN}" if unit else text


def yuan_plain(fen: int) -> str:
    """Machine form of money (JSON, CSV): 123456789 → "1234567.89"."""
    return fixed(fen, FEN_SCALE, grouped=False)


def quantity(base: int, scale: int = 0) -> str:
    """Human form of a quantity: (17013, 0) → "17,013", (17013500, 3) → "17,013.500"."""
    return fixed(base, scale, grouped=True)


def quantity_plain(base: int, scale: int = 0) -> str:
    """Machine form of a quantity (JSON, CSV): (17013500, 3) → "17013.500"."""
    return fixed(base, scale, grouped=False)


def percent(bp: int) -> str:
    """Basis points as a percentage with two decimals: 1250 → "12.50%", 7000 → "70.00%", -5 → "-0.05%"."""
    return fixed(bp, BP_SCALE, grouped=False) + "%"


def decimal_plain(base: int, scale: int) -> str:
    """The shortest exact decimal of `base` at `scale`, for decimal measures: (99500, 3) → "99.5", (100000, 3)
    → "100", (-500, 3) → "-0.5"."""
    text = fixed(base, scale, grouped=False)
    return text.rstrip("0").rstrip(".") if scale else text
