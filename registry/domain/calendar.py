"""The compliance calendar of a scheme and period, as data: dated events the scheduler fires.

A `CalendarTemplate` lists event rules (a date relative to the period year, or a number of days after
another event, optionally moved to a working day); `build_calendar` turns it into concrete events for
one period. Business dates are Asia/Shanghai dates.

Deadline choice: a deadline date D means "by the end of business day D", held as the exclusive instant
`due_before = D+1 00:00 Asia/Shanghai`; an act at instant `at` is on time iff `at < due_before`. An
exclusive bound avoids the 23:59:59.999999 precision trap (a database or client that keeps
milliseconds would round 23:59:59.9995 either way) and compares correctly across time zones.

Working days come from an injected `is_working_day(date) -> bool` (the service passes
`core.workdays.is_working_day`, the State Council's notices as data), because domain code may not import it.
Default national carbon deadline: 31 December of the year after the vintage, set per period by the MEE's notice
(`overrides`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIFT_SEARCH_DAYS_MAX = 31
"""A working day is always found within a month (the longest Chinese holiday is 8 days); more is a bug."""

GEC_VALIDITY_MONTHS = 24
"""绿证有效期2年，自电量生产自然月（含）起计算 (国能发新能规〔2024〕67号). [configurable]"""


class EventKind(StrEnum):
    ALLOCATION = "allocation"
    PRE_ALLOCATION = "pre_allocation"
    REPORT_DUE = "report_due"
    VERIFICATION_DUE = "verification_due"
    SURRENDER_DEADLINE = "surrender_deadline"
    SETTLEMENT = "settlement"
    TRUE_UP = "true_up"
    GEC_EXPIRY = "gec_expiry"
    MARKET_CLOSE = "market_close"
    LATE_SURRENDER_END = "late_surrender_end"


class Shift(StrEnum):
    """Where an event on a non-working day moves: nowhere, to the next or to the previous working day."""

    NONE = "none"
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class FixedDate:
    """Month and day in year `period_year + year_offset` (e.g. 31 Dec of the year after the vintage)."""

    year_offset: int
    month: int
    day: int


@dataclass(frozen=True, slots=True)
class AfterEvent:
    """`days` calendar days after another event of the same period (negative means before)."""

    event: EventKind
    days: int


@dataclass(frozen=True, slots=True)
class EventRule:
    kind: EventKind
    when: FixedDate | AfterEvent
    is_deadline: bool = False
    shift: Shift = Shift.NONE
    description: str = ""
    citation: str = ""


@dataclass(frozen=True, slots=True)
class CalendarTemplate:
    scheme: str
    rules: tuple[EventRule, ...]
    note: str = ""


def start_of_day(day: date) -> datetime:
    """00:00 of a Shanghai business date, as an aware instant."""
    return datetime.combine(day, time(0), SHANGHAI)


def deadline_instant(day: date) -> datetime:
    """The exclusive end of business day `day`: the next day at 00:00 Asia/Shanghai."""
    return start_of_day(day + timedelta(days=1))


def business_date(at: datetime) -> date:
    """The Shanghai business date of an aware instant."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware instant is required")
    return at.astimezone(SHANGHAI).date()


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One dated event of a period.

    `starts_at` is 00:00 of the business date; `due_before` its exclusive end. A deadline is met by an
    act with `at < due_before`; the scheduler fires deadline jobs at `due_before`, others at `starts_at`.
    """

    kind: EventKind
    business_date: date
    starts_at: datetime
    due_before: datetime
    is_deadline: bool
    description: str = ""
    citation: str = ""
    shifted_from: date | None = None
    overridden: bool = False

    @property
    def fires_at(self) -> datetime:
        return self.due_before if self.is_deadline else self.starts_at

    def is_on_time(self, at: datetime) -> bool:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("a timezone-aware instant is required")
        return at < self.due_before


def _event(rule: EventRule, day: date, shifted_from: date | None, overridden: bool) -> CalendarEvent:
    return CalendarEvent(
        kind=rule.kind,
        business_date=day,
        starts_at=start_of_day(day),
        due_before=deadline_instant(day),
        is_deadline=rule.is_deadline,
        description=rule.description,
        citation=rule.citation,
        shifted_from=shifted_from,
        overridden=overridden,
    )


@dataclass(frozen=True, slots=True)
class PeriodCalendar:
    """The events of one scheme and period, in date order (ties by kind)."""

    scheme: str
    period_year: int
    events: tuple[CalendarEvent, ...]

    def event(self, kind: EventKind) -> CalendarEvent:
        """The event of this kind; `KeyError` if the template has none."""
        for e in self.events:
            if e.kind is kind:
                return e
        raise KeyError(kind)

    def due(self, now: datetime) -> tuple[CalendarEvent, ...]:
        """Events whose firing instant has come by `now` (the scheduler then claims each exactly once)."""
        return tuple(e for e in self.events if e.fires_at <= now)


def shift_to_working_day(
    day: date,
    is_working_day: Callable[[date], bool],
    direction: Shift = Shift.FORWARD,
    max_days: int = SHIFT_SEARCH_DAYS_MAX,
) -> date:
    """The first working day on or after (`forward`) or on or before (`backward`) `day`.

    Raises `ValueError` if none is found within `max_days`, which means the injected calendar is wrong.
    """
    if direction is Shift.NONE:
        return day
    step = timedelta(days=1 if direction is Shift.FORWARD else -1)
    candidate = day
    for _ in range(max_days + 1):
        if is_working_day(candidate):
            return candidate
        candidate += step
    raise ValueError(f"no working day within {max_days} days of {day.isoformat()}")


def build_calendar(
    template: CalendarTemplate,
    period_year: int,
    *,
    is_working_day: Callable[[date], bool] | None = None,
    overrides: Mapping[EventKind, date] | None = None,
) -> PeriodCalendar:
    """Resolve a template for one period.

    `overrides` are dates set by the authority's notice for this period; they are taken as given (never
    shifted) and events defined relative to them follow. Raises `ValueError` for an impossible date,
    an unknown or cyclic anchor, a duplicated kind, or a shift without a working-day calendar.
    """
    overrides = overrides or {}
    rules = {r.kind: r for r in template.rules}
    if len(rules) != len(template.rules):
        raise ValueError(f"template {template.scheme!r} defines an event kind twice")
    unknown = set(overrides) - set(rules)
    if unknown:
        raise ValueError(f"overrides for events not in the template: {sorted(k.value for k in unknown)}")

    resolved: dict[EventKind, CalendarEvent] = {}

    def resolve(kind: EventKind, path: tuple[EventKind, ...]) -> CalendarEvent:
        if kind in resolved:
            return resolved[kind]
        if kind in path:
            raise ValueError(f"cyclic calendar anchors: {' -> '.join(k.value for k in (*path, kind))}")
        rule = rules.get(kind)
        if rule is None:
            raise ValueError(
                f"event {path[-1].value if path else '?'} is anchored on {kind.value}, not in the template"
            )
        if kind in overrides:
            event = _event(rule, overrides[kind], None, True)
        else:
            when = rule.when
            if isinstance(when, FixedDate):
                raw = date(period_year + when.year_offset, when.month, when.day)
            else:
                raw = resolve(when.event, (*path, kind)).business_date + timedelta(days=when.days)
            day = raw
            if rule.shift is not Shift.NONE:
                if is_working_day is None:
                    raise ValueError(f"event {kind.value} shifts to a working day; pass is_working_day")
                day = shift_to_working_day(raw, is_working_day, rule.shift)
            event = _event(rule, day, raw if day != raw else None, False)
        resolved[kind] = event
        return event

    for kind in rules:
        resolve(kind, ())
    events = tuple(sorted(resolved.values(), key=lambda e: (e.business_date, e.kind.value)))
    return PeriodCalendar(template.scheme, period_year, events)


def gec_last_valid_date(
    production_year: int, production_month: int, validity_months: int = GEC_VALIDITY_MONTHS
) -> date:
    """Last business date a green certificate is valid: the production month counts as month 1."""
    index = production_year * 12 + (production_month - 1) + validity_months
    first_of_expiry_month = date(index // 12, index % 12 + 1, 1)
    return first_of_expiry_month - timedelta(days=1)


def gec_expiry_event(
    production_year: int, production_month: int, validity_months: int = GEC_VALIDITY_MONTHS
) -> CalendarEvent:
    """The expiry (核销) event of certificates of one production month; fires at its `due_before`."""
    last = gec_last_valid_date(production_year, production_month, validity_months)
    return _event(
        EventRule(
            EventKind.GEC_EXPIRY,
            FixedDate(0, last.month, last.day),
            is_deadline=True,
            description=f"green certificates produced {production_year}-{production_month:02d} expire",
            citation="国能发新能规〔2024〕67号 绿证有效期2年（自生产自然月（含）起）",
        ),
        last,
        None,
        False,
    )


_CARBON_RULES = "碳排放权交易管理办法（试行）(生态环境部令第19号)"

NATIONAL_CARBON_TEMPLATE = CalendarTemplate(
    scheme="national_carbon",
    # Dates other than report_due are set per period by MEE notices: a period passes them as overrides.
    note="全国碳市场：除排放报告报送日外，各日期以生态环境部每期通知为准。",
    rules=(
        EventRule(
            EventKind.REPORT_DUE,
            FixedDate(1, 3, 31),
            is_deadline=True,
            description="重点排放单位报送上年度温室气体排放报告",
            citation=f"{_CARBON_RULES} 第二十五条",
        ),
        EventRule(
            EventKind.VERIFICATION_DUE,
            FixedDate(1, 6, 30),
            is_deadline=True,
            description="省级生态环境主管部门完成核查",
            citation=f"{_CARBON_RULES} 第二十六条",
        ),
        EventRule(
            EventKind.PRE_ALLOCATION,
            FixedDate(1, 9, 30),
            description="预分配配额发放",
            citation="全国碳排放权交易配额总量设定与分配实施方案",
        ),
        EventRule(
            EventKind.ALLOCATION,
            FixedDate(1, 10, 31),
            description="配额核定与发放",
            citation="全国碳排放权交易配额总量设定与分配实施方案",
        ),
        EventRule(
            EventKind.TRUE_UP,
            AfterEvent(EventKind.ALLOCATION, 0),
            description="核定配额与预分配配额的差额多退少补",
        ),
        EventRule(
            EventKind.MARKET_CLOSE,
            FixedDate(1, 12, 31),
            shift=Shift.BACKWARD,
            description="本履约周期最后交易日",
        ),
        EventRule(
            EventKind.SURRENDER_DEADLINE,
            FixedDate(1, 12, 31),
            is_deadline=True,
            description="配额清缴截止（年度次年12月31日）",
            citation=f"{_CARBON_RULES} 第二十八条; 年度通知",
        ),
        EventRule(
            EventKind.SETTLEMENT,
            AfterEvent(EventKind.SURRENDER_DEADLINE, 1),
            description="清缴结算：状态、缺口、罚款与核减",
            citation="国务院令第775号 第二十四条",
        ),
    ),
)


def template_from_dict(data: Mapping[str, Any]) -> CalendarTemplate:
    """Build a template from plain data (e.g. YAML), so schemes define calendars without code.

    Shape: `{scheme, note?, events: [{kind, year_offset+month+day | after+days, is_deadline?, shift?,
    description?, citation?}]}`. Raises `ValueError` naming the bad entry.
    """
    rules: list[EventRule] = []
    entries: Sequence[Mapping[str, Any]] = data["events"]
    for i, entry in enumerate(entries):
        try:
            kind = EventKind(entry["kind"])
            when: FixedDate | AfterEvent
            if "after" in entry:
                when = AfterEvent(EventKind(entry["after"]), int(entry.get("days", 0)))
            else:
                when = FixedDate(int(entry["year_offset"]), int(entry["month"]), int(entry["day"]))
            rules.append(
                EventRule(
                    kind,
                    when,
                    is_deadline=bool(entry.get("is_deadline", False)),
                    shift=Shift(entry.get("shift", "none")),
                    description=str(entry.get("description", "")),
                    citation=str(entry.get("citation", "")),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"events[{i}]: {exc!r}") from exc
    return CalendarTemplate(str(data["scheme"]), tuple(rules), str(data.get("note", "")))
