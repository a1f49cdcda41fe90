"""Working days come from the State Council's holiday notices kept as data (core/holidays.yaml): they agree with
chinese-calendar day by day for every year it covers, and a working-day date in a year whose notice is not
published is refused with a clear problem instead of a Monday-to-Friday guess."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import chinese_calendar
import pytest

from core import workdays
from core.workdays import CalendarNotPublished, add_working_days, is_working_day, load_calendar, next_working_day


def test_the_shipped_notices_agree_with_chinese_calendar_on_every_day() -> None:
    day, last = dt.date(2004, 1, 1), dt.date(2026, 12, 31)
    checked = 0
    while day <= last:
        assert is_working_day(day) == chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)
        checked += 1
    assert checked == 8401


@pytest.fixture
def shipped_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the notices the repository ships (the test suite otherwise publishes test years 2027-2028)."""
    monkeypatch.delenv("GREENRIGHTS_HOLIDAYS_PATH", raising=False)
    workdays.get_settings.cache_clear()
    workdays.calendar.cache_clear()
    yield
    monkeypatch.undo()
    workdays.get_settings.cache_clear()
    workdays.calendar.cache_clear()


def test_a_deadline_into_an_unpublished_year_is_refused_not_guessed(shipped_only: None) -> None:
    # 15 working days from 11 December 2026 would land on 1 January 2027 (元旦) if every weekday counted.
    with pytest.raises(CalendarNotPublished) as refused:
        add_working_days(dt.date(2026, 12, 11), 15)
    assert refused.value.year == 2027
    assert refused.value.problem.slug == "calendar-not-published" and refused.value.status == 409
    assert "2027" in refused.value.detail
    assert add_working_days(dt.date(2026, 12, 11), 5) == dt.date(2026, 12, 18)


NOTICE_2027 = """
2027:
  notice: 国务院办公厅关于2027年部分节假日安排的通知
  note: test data, not the real notice
  holidays:
    - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  workdays: [2027-01-09]
"""


def test_an_operator_publishes_the_next_year_and_deadlines_then_skip_its_holidays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_only: None
) -> None:
    extra = tmp_path / "holidays-2027.yaml"
    extra.write_text(NOTICE_2027, encoding="utf-8")
    monkeypatch.setenv("GREENRIGHTS_HOLIDAYS_PATH", str(extra))
    workdays.get_settings.cache_clear()
    workdays.calendar.cache_clear()
    assert next_working_day(dt.date(2026, 12, 31)) == dt.date(2027, 1, 4)
    assert add_working_days(dt.date(2026, 12, 11), 15) == dt.date(2027, 1, 4)
    assert is_working_day(dt.date(2027, 1, 9))  # a Saturday made a working day
    with pytest.raises(CalendarNotPublished):
        is_working_day(dt.date(2028, 1, 3))


def test_a_notice_that_contradicts_a_published_year_or_itself_is_refused(tmp_path: Path) -> None:
    clash = tmp_path / "clash.yaml"
    clash.write_text("2026:\n  notice: x\n  holidays: []\n  workdays: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="already published"):
        load_calendar(workdays.SHIPPED, clash)
    weekday = tmp_path / "weekday.yaml"
    weekday.write_text("2027:\n  notice: x\n  workdays: [2027-01-06]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="weekend day"):
        load_calendar(weekday)
