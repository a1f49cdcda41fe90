"""How numbers and times look on a page: yuan with thousands separators and 元, quantities in the instrument's
display unit, dates and times in Asia/Shanghai. Amounts arrive as integers of a base unit (fen, base units)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.clock import SHANGHAI


def yuan(fen: int | None, unit: bool = True) -> str:
    """12345678 fen -> "123,456.78 元"."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}" + (" 元" if unit else "")


def quantity(base: int | None, scale: int = 0) -> str:
    """A quantity of base units shown in display units: (1234567, 3) -> "1,234.567"."""
    if base is None:
        return "—"
    if scale == 0:
        return f"{int(base):,}"
    sign = "-" if base < 0 else ""
    whole, frac = divmod(abs(int(base)), 10**scale)
    return f"{sign}{whole:,}.{frac:0{scale}d}"


def decimal_text(value: str | Decimal | int | None) -> str:
    """A decimal string the API returns ("60000", "1234.5") with thousands separators, digits kept as they are."""
    if value is None or value == "":
        return "—"
    text = str(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit():
        return text
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


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
