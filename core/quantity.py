"""Exact parsing of quantities and money at the API edge.

Inside the house every amount is an integer of its base unit (fen, tCO2e, kgce, kg, MWh). At the edge a client
sends either a JSON integer or a decimal string in the display unit (yuan with 2 decimals, tce with 3, ...).
We refuse rather than round: a float in JSON, an exponent, NaN, a sign on zero, non-ASCII digits, surrounding
blanks, more decimals than the unit has, and anything that would not fit a signed 64-bit balance.
"""

from __future__ import annotations

import re

from core.errors import InvalidInput

INT64_MAX = 2**63 - 1
# The longest decimal string an amount may be (a 64-bit balance has 19 digits; room for a point and decimals).
AMOUNT_TEXT_MAX = 40
# ASCII digits only: `str.isdigit` and `\d` accept "１２" and "١٢", which a registry must not.
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)


def parse_amount(value: object, *, scale: int, field: str, allow_zero: bool = False) -> int:
    """Return `value` in base units, where one display unit is 10**scale base units.

    Accepts a JSON integer (display units) or a plain decimal string such as "12" or "1.234".
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(field, 'Give the amount as a decimal string such as "12.50" or a whole JSON number.')
    if isinstance(value, int):
        if value > INT64_MAX or value < -INT64_MAX:
            raise InvalidInput(field, "The amount is too large.")
        base: int = int(value) * pow(10, scale)
        text = str(value)
    else:
        if len(value) > AMOUNT_TEXT_MAX:
            raise InvalidInput(field, "The amount is too long.")
        match = _DECIMAL.fullmatch(value)
        if match is None:
            raise InvalidInput(
                field,
                "Give the amount as plain ASCII digits with an optional decimal point, "
                "no sign, exponent, spaces or separators.",
            )
        decimals = match.group(1) or ""
        if len(decimals) > scale:
            raise InvalidInput(
                field,
                f"The amount has {len(decimals)} decimal places; this unit allows at most {scale}. "
                "It is never rounded.",
            )
        # Integer arithmetic on the digits: exact at any length, no decimal context to round.
        whole = value.split(".", 1)[0]
        base = int(whole) * pow(10, scale) + (int(decimals.ljust(scale, "0")) if scale else 0)
        text = value
    if base > INT64_MAX:
        raise InvalidInput(field, "The amount is too large for a 64-bit balance.")
    if base < 0 or (base == 0 and not allow_zero):
        raise InvalidInput(field, f"The amount must be positive; got {text}.")
    return base


def parse_quantity(value: object, *, scale: int, field: str = "quantity") -> int:
    return parse_amount(value, scale=scale, field=field)


def parse_money_fen(value: object, *, field: str, allow_zero: bool = False) -> int:
    return parse_amount(value, scale=2, field=field, allow_zero=allow_zero)

