"""How numbers and times look on a page: yuan with thousands separators and 元, quantities in the instrument's
display unit, dates and times in Asia/Shanghai. Amounts arrive as integers of a base unit (fen, base units)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core import figures
from core.clock import SHANGHAI


def yuan(fen: int | None, unit: bool = True) -> str:
    """12345678 fen -> "123,456.78 元"."""
    return "—" if fen is None else figures.yuan(int(fen), unit=unit)


def quantity(base: int | None, scale: int = 0) -> str:
    """A quantity of base units shown in display units: (1234567, 3) -> "1,234.567"."""
    return "—" if base is None else figures.quantity(int(base), scale)


def decimal_text(value: str | Decimal | int | None) -> str:
    """A decimal string the API returns ("60000", "1234.5") with thousands separators, digits kept as they are."""
    if value is None or value == "":
        return "—"
    text = str(value)
    negative = text.startswith("-")
    whole, _, frac = text.removeprefix("-").partition(".")
    if not (whole.isascii() and whole.isdigit()) or not (frac == "" or (frac.isascii() and frac.isdigit())):
        return text
    # The digits as an integer at the scale of the decimals it has, so none is added or dropped.
    base = int(whole + frac)
    return figures.quantity(-base if negative else base, len(frac))


def _local(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("naive datetime on a page")
    return value.astimezone(SHANGHAI)


def sh_datetime(value: dt.datetime | str | None) -> str:
    """A moment as Shanghai wall time: "2026-03-02 10:00"."""
    return "—" if value is None else _local(value).strftime("%Y-%m-%d %H:%M")


def sh_date(value: dt.date | dt.datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime) or (isinstance(value, str) and "T" in value):
        return _local(value).strftime("%Y-%m-%d")
    return str(value)[:10]


FILTERS = {
    "yuan": yuan,
    "quantity": quantity,
    "decimal": decimal_text,
    "sh_datetime": sh_datetime,
    "sh_date": sh_date,
}
