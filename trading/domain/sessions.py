"""Trading sessions: when the market accepts orders, in Asia/Shanghai business time.

National carbon market defaults: listed agreement and continuous trading Monday to Friday 09:30–11:30 and
13:00–15:00, block trades 13:00–15:00, on working days only. Each window is half-open (`start <= t < end`),
so an order stamped exactly 11:30:00 or 15:00:00 is refused.

The working-day test is injected (`is_working_day(date) -> bool`; the service passes
`core.workdays.is_working_day`, the State Council's notices as data) because domain code is pure. A session also
requires Monday to Friday even when the calendar calls a weekend day a working day: the adjusted weekend
working days (调休) of the State Council calendar are office days, but the exchanges stay closed on them.

China has observed no daylight saving time since 1991, so Asia/Shanghai is the fixed offset UTC+8; using
the fixed offset keeps this module free of time-zone database reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

SHANGHAI_OFFSET = timezone(timedelta(hours=8), "Asia/Shanghai")

WorkingDayTest = Callable[[date], bool]


def is_aware(at: datetime) -> bool:
    return at.tzinfo is not None and at.utcoffset() is not None


def business_date(at: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware instant."""
    if not is_aware(at):
        raise ValueError("a timezone-aware datetime is required")
    return at.astimezone(SHANGHAI_OFFSET).date()


@dataclass(frozen=True, slots=True)
class Window:
    """One half-open trading window in local (Asia/Shanghai) wall-clock time."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError("a window must end after it starts")


@dataclass(frozen=True, slots=True)
class Sessions:
    """The windows of one trading day, and the weekdays (0 = Monday) on which there is a trading day."""

    windows: tuple[Window, ...]
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)

    def is_open(self, at: datetime, is_working_day: WorkingDayTest | None = None) -> bool:
        """Whether orders are accepted at the aware instant `at`.

        Without a working-day test only the weekday is checked; production passes the calendar.
        """
        if not is_aware(at):
            raise ValueError("a timezone-aware datetime is required")
        local = at.astimezone(SHANGHAI_OFFSET)
        if local.weekday() not in self.weekdays:
            return False
        clock = local.time().replace(tzinfo=None)
        if not any(window.start <= clock < window.end for window in self.windows):
            return False
        return is_working_day is None or is_working_day(local.date())


LISTED_SESSIONS = Sessions((Window(time(9, 30), time(11, 30)), Window(time(13, 0), time(15, 0))))
BLOCK_SESSIONS = Sessions((Window(time(13, 0), time(15, 0)),))
