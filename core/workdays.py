"""Chinese working days (statutory holidays and adjusted weekend workdays) from `chinese-calendar`.

The library covers the years the State Council has published. Beyond them we fall back to Monday to Friday,
which is what an official calendar not yet published most likely says, and we say so in the name.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar


def is_working_day(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


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
