"""Chinese working days from the State Council's annual holiday notices, kept as data (`core/holidays.yaml`).

A day is a working day when it is Monday to Friday and not a published holiday, or when it is a weekend day the
notice makes a working day (调休上班). Each year's notice is published in the autumn before; until it is, no one
can say whether 1 January or 8 October of that year is a working day, so a question about a year that is not
published is refused with `CalendarNotPublished` (problem `calendar-not-published`, 409), never answered with a
guess: a deadline counted in working days into such a year says so instead of landing on a holiday.

An operator publishes a new year by writing its notice in the same layout into the file that
`GREENRIGHTS_HOLIDAYS_PATH` names; it is read at start, and a year may be published once (a year in both files
must be identical there). `greenrights calendar` lists the published years with their notices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from core.errors import Conflict
from core.settings import get_settings

SHIPPED = Path(__file__).with_name("holidays.yaml")


class CalendarNotPublished(Conflict):
    def __init__(self, year: int) -> None:
        super().__init__(
            "calendar-not-published",
            f"The working-day calendar for {year} is not published: the State Council's holiday notice for {year} "
            "has not been entered, so no working-day date in that year can be computed. An operator adds it to "
            "the holiday calendar (GREENRIGHTS_HOLIDAYS_PATH; see `greenrights calendar`).",
            extra={"year": year},
        )
        self.year = year


@dataclass(frozen=True)
class YearNotice:
    """One year's holiday notice: the days off and the adjusted weekend working days, with the source."""

    year: int
    notice: str
    citation: str | None
    published_on: dt.date | None
    note: str | None
    holidays: dict[dt.date, str]
    workdays: frozenset[dt.date]


def _dates(a: dt.date, b: dt.date) -> list[dt.date]:
    return [a + dt.timedelta(days=n) for n in range((b - a).days + 1)]


def _parse(year: int, raw: dict[str, Any], source: Path) -> YearNotice:
    def fail(why: str) -> ValueError:
        return ValueError(f"{source}: year {year}: {why}")

    if not str(raw.get("notice") or "").strip():
        raise fail("every year names its notice")
    holidays: dict[dt.date, str] = {}
    for h in raw.get("holidays") or []:
        start, end = h["from"], h["to"]
        if not (isinstance(start, dt.date) and isinstance(end, dt.date) and start <= end):
            raise fail(f"holiday {h!r} needs dates from <= to")
        for day in _dates(start, end):
            if day.year != year or day in holidays:
                raise fail(f"{day} is outside the year or listed twice")
            holidays[day] = str(h["name"])
    workdays = frozenset(raw.get("workdays") or [])
    for day in workdays:
        if not isinstance(day, dt.date) or day.year != year or day.weekday() < 5 or day in holidays:
            raise fail(f"working day {day!r} must be a weekend day of the year that is not a holiday")
    return YearNotice(
        year=year,
        notice=str(raw["notice"]),
        citation=raw.get("citation"),
        published_on=raw.get("published_on"),
        note=raw.get("note"),
        holidays=holidays,
        workdays=workdays,
    )


def load_calendar(*paths: Path) -> dict[int, YearNotice]:
    """The published years of every file given; a year published in two files must say the same thing."""
    years: dict[int, YearNotice] = {}
    for path in paths:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for year, body in raw.items():
            notice = _parse(int(year), body, path)
            if notice.year in years and (years[notice.year].holidays, years[notice.year].workdays) != (
                notice.holidays,
                notice.workdays,
            ):
                raise ValueError(f"{path}: year {year} is already published with other days")
            years.setdefault(notice.year, notice)
    return years


@lru_cache(maxsize=1)
def calendar() -> dict[int, YearNotice]:
    extra = get_settings().holidays_path
    return load_calendar(SHIPPED, *([Path(extra)] if extra else []))


def notice_for(year: int) -> YearNotice:
    found = calendar().get(year)
    if found is None:
        raise CalendarNotPublished(year)
    return found


def is_working_day(day: dt.date) -> bool:
    notice = notice_for(day.year)
    if day in notice.workdays:
        return True
    return day.weekday() < 5 and day not in notice.holidays


def next_working_day(day: dt.date) -> dt.date:
    """The first working day strictly after `day`."""
    nxt = day + dt.timedelta(days=1)
    while not is_working_day(nxt):
        nxt += dt.timedelta(days=1)
    return nxt


def add_working_days(day: dt.date, count: int) -> dt.date:
    for _ in range(count):
        day = next_working_day(day)
    return day
