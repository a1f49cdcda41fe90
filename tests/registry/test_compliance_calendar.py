"""Tests of registry/domain/calendar.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import pytest

from registry.domain.calendar import (
    NATIONAL_CARBON_TEMPLATE,
    SHANGHAI,
    AfterEvent,
    CalendarTemplate,
    EventKind,
    EventRule,
    FixedDate,
    Shift,
    build_calendar,
    business_date,
    deadline_instant,
    gec_expiry_event,
    gec_last_valid_date,
    shift_to_working_day,
    template_from_dict,
)


def _weekdays(day: date) -> bool:
    return day.weekday() < 5


def test_deadline_is_the_exclusive_end_of_the_shanghai_business_day() -> None:
    due = deadline_instant(date(2025, 12, 31))
    assert due == datetime(2026, 1, 1, tzinfo=SHANGHAI)
    assert due == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    assert business_date(due - timedelta(microseconds=1)) == date(2025, 12, 31)
    assert business_date(due) == date(2026, 1, 1)


def test_default_national_carbon_deadline_is_31_december_of_the_year_after_the_vintage() -> None:
    cal = build_calendar(NATIONAL_CARBON_TEMPLATE, 2024, is_working_day=chinese_calendar.is_workday)
    deadline = cal.event(EventKind.SURRENDER_DEADLINE)
    assert deadline.business_date == date(2025, 12, 31)
    assert deadline.is_deadline
    assert deadline.is_on_time(datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=SHANGHAI))
    assert not deadline.is_on_time(datetime(2026, 1, 1, tzinfo=SHANGHAI))
    settlement = cal.event(EventKind.SETTLEMENT)
    assert settlement.business_date == date(2026, 1, 1)
    # The settlement job starts exactly when the deadline ends, never before.
    assert settlement.fires_at == deadline.fires_at == deadline.due_before


def test_events_are_in_date_order_and_due_returns_those_whose_time_has_come() -> None:
    cal = build_calendar(NATIONAL_CARBON_TEMPLATE, 2024, is_working_day=chinese_calendar.is_workday)
    dates = [e.business_date for e in cal.events]
    assert dates == sorted(dates)
    due = cal.due(datetime(2025, 7, 1, tzinfo=SHANGHAI))
    assert [e.kind for e in due] == [EventKind.REPORT_DUE, EventKind.VERIFICATION_DUE]


def test_market_close_on_a_sunday_moves_back_to_the_last_working_day() -> None:
    # 31 Dec 2023 is a Sunday; 29 Dec is the Friday before.
    cal = build_calendar(NATIONAL_CARBON_TEMPLATE, 2022, is_working_day=chinese_calendar.is_workday)
    close = cal.event(EventKind.MARKET_CLOSE)
    assert close.business_date == date(2023, 12, 29)
    assert close.shifted_from == date(2023, 12, 31)


def test_shift_uses_the_injected_calendar_including_adjusted_working_weekends() -> None:
    # 2024-10-01..07 is the National Day holiday; Saturday 12 Oct 2024 is an adjusted working day.
    assert shift_to_working_day(date(2024, 10, 1), chinese_calendar.is_workday) == date(2024, 10, 8)
    assert shift_to_working_day(date(2024, 10, 12), chinese_calendar.is_workday) == date(2024, 10, 12)
    assert shift_to_working_day(date(2024, 10, 7), chinese_calendar.is_workday, Shift.BACKWARD) == date(2024, 9, 30)
    assert shift_to_working_day(date(2024, 10, 5), _weekdays, Shift.NONE) == date(2024, 10, 5)


def test_shift_gives_up_after_the_search_limit() -> None:
    with pytest.raises(ValueError, match="no working day"):
        shift_to_working_day(date(2024, 1, 1), lambda _d: False)


def test_overrides_set_by_notice_are_not_shifted_and_anchored_events_follow() -> None:
    cal = build_calendar(
        NATIONAL_CARBON_TEMPLATE,
        2023,
        is_working_day=_weekdays,
        overrides={EventKind.SURRENDER_DEADLINE: date(2024, 12, 28)},  # a Saturday, as given
    )
    assert cal.event(EventKind.SURRENDER_DEADLINE).business_date == date(2024, 12, 28)
    assert cal.event(EventKind.SURRENDER_DEADLINE).overridden
    assert cal.event(EventKind.SETTLEMENT).business_date == date(2024, 12, 29)


def test_template_errors_are_reported() -> None:
    shifting = CalendarTemplate("s", (EventRule(EventKind.REPORT_DUE, FixedDate(1, 3, 31), shift=Shift.FORWARD),))
    with pytest.raises(ValueError, match="is_working_day"):
        build_calendar(shifting, 2024)
    cyclic = CalendarTemplate(
        "c",
        (
            EventRule(EventKind.SETTLEMENT, AfterEvent(EventKind.TRUE_UP, 1)),
            EventRule(EventKind.TRUE_UP, AfterEvent(EventKind.SETTLEMENT, 1)),
        ),
    )
    with pytest.raises(ValueError, match="cyclic"):
        build_calendar(cyclic, 2024)
    dangling = CalendarTemplate("d", (EventRule(EventKind.SETTLEMENT, AfterEvent(EventKind.TRUE_UP, 1)),))
    with pytest.raises(ValueError, match="not in the template"):
        build_calendar(dangling, 2024)
    with pytest.raises(ValueError, match="not in the template"):
        build_calendar(dangling, 2024, overrides={EventKind.REPORT_DUE: date(2025, 1, 1)})
    impossible = CalendarTemplate("i", (EventRule(EventKind.REPORT_DUE, FixedDate(1, 2, 30)),))
    with pytest.raises(ValueError):
        build_calendar(impossible, 2024)


def test_template_from_plain_data() -> None:
    template = template_from_dict(
        {
            "scheme": "jiangxi_energy_use",
            "events": [
                {"kind": "report_due", "year_offset": 1, "month": 4, "day": 30, "is_deadline": True},
                {
                    "kind": "surrender_deadline",
                    "year_offset": 1,
                    "month": 6,
                    "day": 30,
                    "is_deadline": True,
                    "shift": "forward",
                },
                {"kind": "settlement", "after": "surrender_deadline", "days": 1},
            ],
        }
    )
    cal = build_calendar(template, 2024, is_working_day=chinese_calendar.is_workday)
    assert cal.event(EventKind.SURRENDER_DEADLINE).business_date == date(2025, 6, 30)  # a Monday
    assert cal.event(EventKind.SETTLEMENT).business_date == date(2025, 7, 1)
    with pytest.raises(ValueError, match=r"events\[0\]"):
        template_from_dict({"scheme": "x", "events": [{"kind": "no_such_event", "after": "report_due"}]})


def test_green_certificates_are_valid_for_24_months_counting_the_production_month() -> None:
    assert gec_last_valid_date(2024, 1) == date(2025, 12, 31)
    assert gec_last_valid_date(2024, 12) == date(2026, 11, 30)
    assert gec_last_valid_date(2023, 3) == date(2025, 2, 28)
    event = gec_expiry_event(2024, 2)
    assert event.business_date == date(2026, 1, 31)
    assert event.fires_at == datetime(2026, 2, 1, tzinfo=SHANGHAI)


def test_business_date_refuses_naive_instants() -> None:
    with pytest.raises(ValueError):
        business_date(datetime(2025, 1, 1))
