"""Helpers shared by the programme rules: catalogue gates, date windows and cross-field fact checks."""

from __future__ import annotations

import calendar
from datetime import date

from incentives.domain.arith import date_key
from incentives.domain.facts import FactsError
from incentives.domain.params import CatalogueItem
from incentives.domain.rules import Context


def catalogue_gate(ctx: Context, gate: str, parameter: str, at: date | None, value: str,
                   key: str = "code") -> CatalogueItem | None:
    """Gate: `value` is listed in the catalogue edition in force on `at` (the day that selects the edition).

    Returns the listed item (with its rule attributes) or None.
    """
    entry = ctx.params.entry(parameter, at)
    catalogue = ctx.params.catalogue(parameter, at)
    item = catalogue.find(value) if key == "code" else catalogue.find_by(key, value)
    when = f" (edition in force on {at.isoformat()})" if at else ""
    ctx.gate(
        gate, measured=value, comparator="in", threshold=catalogue.edition, unit="", passed=item is not None,
        citation=entry.citation,
        remedy_en=f"'{value}' is not listed in {catalogue.edition}{when}; only listed items qualify",
        remedy_zh=f"「{value}」不在{catalogue.edition}内，仅目录所列项目可享受",
    )
    return item


def not_more_than(pairs: list[tuple[str, int, str, int]]) -> None:
    """Refuse facts where a part exceeds its whole (e.g. deductible VAT above the invoice total)."""
    problems = [(part, f"({value}) cannot exceed {whole} ({limit})") for part, value, whole, limit in pairs
                if value > limit]
    if problems:
        raise FactsError(problems)


def key_of(day: date | None) -> int:
    """The yyyymmdd key of an optional date; 0 when absent (the vector path uses the same sentinel)."""
    return 0 if day is None else date_key(day)


def anniversary(start: date, years: int) -> date:
    """`start` moved by whole `years`; 29 February lands on 1 March in a common year.

    A period of whole years that starts on 29 February then ends on 28 February (the month end) of a common
    year, as 民法典 第二百零二条 counts a period without a corresponding day ("没有对应日的，月末日为期间的最后一日").
    """
    year = start.year + years
    if start.month == 2 and start.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return start.replace(year=year)
