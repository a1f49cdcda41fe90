"""Dates and amounts of the finance bureau (finance/domain/rules.py and payments.py): working-day deadlines, the
public notice window, the facts diff of a resubmission, budget arithmetic, penalty amounts with the statutory
late surcharge, the clawback window and the bank's payment file."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.workdays import is_working_day
from finance.domain import payments, rules
from finance.domain.workflow import State

D = dt.date


def weekdays(day: dt.date) -> bool:
    return day.weekday() < 5


# ------------------------------------------------------------------------------------------ working days


def test_working_days_skip_the_spring_festival_and_count_an_adjusted_saturday() -> None:
    # 2026-02-14 (Saturday) is a working day in lieu; 15 to 23 February are the Spring Festival holiday.
    assert rules.add_working_days(D(2026, 2, 13), 1, is_working_day) == D(2026, 2, 14)
    assert rules.add_working_days(D(2026, 2, 14), 1, is_working_day) == D(2026, 2, 24)
    assert rules.add_working_days(D(2026, 3, 2), 0, is_working_day) == D(2026, 3, 2)


def test_notice_window_counts_its_first_day_and_starts_on_a_working_day() -> None:
    w = rules.notice_window(D(2026, 3, 2), 5, is_working_day)  # a Monday
    assert (w.first_day, w.last_day) == (D(2026, 3, 2), D(2026, 3, 6))
    assert not w.ended(D(2026, 3, 6)) and w.ended(D(2026, 3, 7))
    w = rules.notice_window(D(2026, 3, 7), 5, is_working_day)  # a Saturday: starts on Monday
    assert (w.first_day, w.last_day) == (D(2026, 3, 9), D(2026, 3, 13))
    with pytest.raises(ValueError):
        rules.notice_window(D(2026, 3, 2), 0, is_working_day)


def test_stage_deadlines_name_the_bureaus_next_step_only() -> None:
    days = {
        "formal_check_working_days": 5,
        "review_working_days": 15,
        "approval_working_days": 5,
        "disbursement_working_days": 10,
    }
    assert rules.stage_due_on(State.SUBMITTED, D(2026, 3, 2), days, weekdays) == D(2026, 3, 9)
    assert rules.stage_due_on(State.CHECKED, D(2026, 3, 2), days, weekdays) == D(2026, 3, 23)
    for waiting_for_the_enterprise in (State.DRAFT, State.RETURNED, State.REJECTED, State.DISBURSED):
        assert rules.stage_due_on(waiting_for_the_enterprise, D(2026, 3, 2), days, weekdays) is None


def test_a_calendar_without_working_days_is_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError):
        rules.next_working_day(D(2026, 1, 1), lambda _d: False)


# ------------------------------------------------------------------------------------------ facts diff


def test_resubmission_diff_lists_added_removed_and_changed_facts_in_order() -> None:
    before = {"fs_policy_year": 4, "fs_premium_rate_bp": 400, "fs_catalogue_code": "FS2019-01", "gone": True}
    after = {"fs_policy_year": 3, "fs_premium_rate_bp": 400, "fs_catalogue_code": "FS2019-01", "new": "x"}
    assert [c.to_dict() for c in rules.facts_diff(before, after)] == [
        {"fact": "fs_policy_year", "change": "changed", "before": 4, "after": 3},
        {"fact": "gone", "change": "removed", "before": True, "after": None},
        {"fact": "new", "change": "added", "before": None, "after": "x"},
    ]


def test_diff_tells_one_from_true_and_null_from_absent() -> None:
    assert [c.change for c in rules.facts_diff({"a": 1}, {"a": True})] == ["changed"]
    assert rules.facts_diff({"a": None}, {}) == ()


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.booleans(), st.text(max_size=3))))
def test_nothing_changed_means_an_empty_diff(facts: dict[str, object]) -> None:
    assert rules.facts_diff(facts, dict(facts)) == ()


# ------------------------------------------------------------------------------------------ budgets


def test_budget_available_is_appropriated_plus_clawed_back_less_committed_and_disbursed() -> None:
    f = rules.BudgetFigures(
        appropriated_fen=1_000_000, committed_fen=200_000, disbursed_fen=300_000, clawed_back_fen=50_000
    )
    assert f.available_fen == 550_000


# ------------------------------------------------------------------------------------------ penalties


def test_no_surcharge_until_the_day_after_the_due_day() -> None:
    due = rules.amount_due(423_997_000_00, D(2027, 2, 1), D(2027, 2, 1), 300)
    assert (due.surcharge_fen, due.days_late, due.total_fen) == (0, 0, 423_997_000_00)


def test_surcharge_is_three_percent_a_day_half_up_and_never_above_the_fine() -> None:
    assert rules.amount_due(100_00, D(2027, 2, 1), D(2027, 2, 3), 300).surcharge_fen == 6_00
    assert rules.amount_due(1_01, D(2027, 2, 1), D(2027, 2, 2), 300).surcharge_fen == 3  # 3.03 fen → 3
    assert rules.amount_due(50, D(2027, 2, 1), D(2027, 2, 2), 300).surcharge_fen == 2  # 1.5 fen → 2 (half up)
    capped = rules.amount_due(100_00, D(2027, 2, 1), D(2027, 3, 31), 300)
    assert capped.surcharge_fen == 100_00 and capped.total_fen == 200_00 and capped.days_late == 58


@given(st.integers(1, 10**12), st.integers(0, 400), st.integers(0, 1000))
def test_surcharge_grows_with_days_and_stays_within_the_fine(fine: int, days: int, bp: int) -> None:
    due_on = D(2027, 1, 1)
    today = rules.amount_due(fine, due_on, due_on + dt.timedelta(days=days), bp)
    tomorrow = rules.amount_due(fine, due_on, due_on + dt.timedelta(days=days + 1), bp)
    assert 0 <= today.surcharge_fen <= tomorrow.surcharge_fen <= fine


def test_penalty_status() -> None:
    assert rules.penalty_status(False, D(2027, 2, 1), D(2027, 2, 1)) == "unpaid"
    assert rules.penalty_status(False, D(2027, 2, 1), D(2027, 2, 2)) == "overdue"
    assert rules.penalty_status(True, D(2027, 2, 1), D(2027, 3, 2)) == "paid"


# ------------------------------------------------------------------------------------------ clawback and numbers


def test_clawback_window_closes_on_the_anniversary_and_handles_29_february() -> None:
    assert rules.clawback_open(D(2026, 3, 2), D(2031, 3, 1), 5)
    assert not rules.clawback_open(D(2026, 3, 2), D(2031, 3, 2), 5)
    assert rules.years_later(D(2028, 2, 29), 1) == D(2029, 2, 28)


def test_numbers() -> None:
    assert rules.claim_no(2026, 42) == "CZ2026-000042"
    assert rules.document_no("decision_letter", 2026, 42, 1) == "JD2026-000042-01"
    assert rules.document_no("clawback_decision", 2026, 42, 3) == "ZH2026-000042-03"


# ------------------------------------------------------------------------------------------ payment file


def test_payment_file_has_one_row_per_claim_exact_amounts_and_no_formulas() -> None:
    lines = [
        payments.PaymentLine(
            "CZ2026-000001",
            "=HYPERLINK(1)",
            "91360100000000001X",
            "中国银行南昌分行",
            "6217000000000001",
            120_000_000_00,
            "CZ2026-000001 首台（套）",
        ),
        payments.PaymentLine("CZ2026-000002", "九江材料", "913601000000000020", "+bank", "6217000000000002", 5, "x"),
    ]
    text = payments.payment_file("FB20260310-00001", lines)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["line_no"] for r in rows] == ["1", "2"]
    assert rows[0]["amount_fen"] == "12000000000" and rows[0]["amount_yuan"] == "120000000.00"
    assert rows[1]["amount_yuan"] == "0.05"
    assert rows[0]["payee_name"] == "'=HYPERLINK(1)" and rows[1]["payee_bank"] == "'+bank"
    assert text.endswith("\r\n") and rows[0]["currency"] == "CNY"
    with pytest.raises(ValueError):
        payments.payment_file("FB", [payments.PaymentLine("c", "n", "u", "b", "a", 0, "p")])
