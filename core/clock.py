"""Time for the whole house: instants are timezone-aware UTC; business dates and deadlines are in Asia/Shanghai.

Services receive a `Clock` so that tests and the scheduler can fix "now"; domain code receives `now` as an
argument and never reads a clock itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and replays."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = require_aware(at)

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> None:
        self.at = self.at + delta

    def set(self, at: dt.datetime) -> None:
        self.at = require_aware(at)


class SandboxClock:
    """System time plus an offset that only grows: the simulated clock of a sandbox database (core/sandbox.py keeps
    the offset in the database and feeds it here). `adopt` ignores a smaller offset, so `now()` never goes back
    within a process, whatever order the database reads arrive in."""

    sandbox = True

    def __init__(self, offset: dt.timedelta = dt.timedelta(0), base: Clock | None = None) -> None:
        if offset < dt.timedelta(0):
            raise ValueError("a sandbox clock runs ahead of system time, never behind")
        self._offset = offset
        self.base = base or SystemClock()

    @property
    def offset(self) -> dt.timedelta:
        return self._offset

    def now(self) -> dt.datetime:
        return self.base.now() + self._offset

    def real_now(self) -> dt.datetime:
        return self.base.now()

    def adopt(self, offset: dt.timedelta) -> bool:
        """Take a newer offset; True when it moved the clock."""
        if offset > self._offset:
            self._offset = offset
            return True
        return False


def is_sandbox(clock: Clock) -> bool:
    return bool(getattr(clock, "sandbox", False))


def require_aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: an instant needs a timezone")
    return value.astimezone(UTC)


def business_date(instant: dt.datetime) -> dt.date:
    """The Shanghai calendar date on which an instant falls."""
    return require_aware(instant).astimezone(SHANGHAI).date()


def shanghai_time(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def end_of_business_day(day: dt.date) -> dt.datetime:
    """A deadline "on day D" is met by any instant before 00:00 Shanghai of the next day."""
    return shanghai_time(day + dt.timedelta(days=1))
