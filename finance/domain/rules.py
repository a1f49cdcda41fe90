"""The finance bureau's date and amount rules: working-day deadlines, the public notice (公示) window, what changed
between two sets of claim facts, a budget's figures, penalty amounts due with the statutory late surcharge, and
the clawback window.

Dates are business dates in Asia/Shanghai, passed in. Working days come from an injected predicate
(`is_working_day`), which the service takes from `core.workdays` (the published notices); money is integer fen
throughout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from finance.domain.workflow import State

WorkingDay = Callable[[dt.date], bool]

BP = 10_000
MAX_DAYS_SCANNED = 3_660
"""A calendar never has ten years without a working day; the bound keeps a broken predicate from looping."""


# ----------------------------------------------------------------------------------------------- working days


def next_working_day(day: dt.date, is_working_day: WorkingDay) -> dt.date:
    """The first working day strictly after `day`."""
    nxt = day
    for _ in range(MAX_DAYS_SCANNED):
        nxt += dt.timedelta(days=1)
        if is_working_day(nxt):
            return nxt
    raise ValueError(f"no working day within {MAX_DAYS_SCANNED} days after {day.isoformat()}")


def add_working_days(day: dt.date, count: int, is_working_day: WorkingDay) -> dt.date:
    """`count` working days after `day` (day itself not counted): a deadline "within N working days"."""
    if count < 0:
        raise ValueError("count must be >= 0")
    for _ in range(count):
        day = next_working_day(day, is_working_day)
    return day


def first_working_day_on_or_after(day: dt.date, is_working_day: WorkingDay) -> dt.date:
    return day if is_working_day(day) else next_working_day(day, is_working_day)


@dataclass(frozen=True, slots=True)
class NoticeWindow:
    """The public notice (公示): shown from `first_day` to `last_day`, both working days and both included."""

    first_day: dt.date
    last_day: dt.date
    working_days: int

    def ended(self, today: dt.date) -> bool:
        """True from the day after the last notice day: only then can the approval become final."""
        return today > self.last_day


def notice_window(approved_on: dt.date, working_days: int, is_working_day: WorkingDay) -> NoticeWindow:
    """The notice starts on the approval day if that is a working day (else the next one) and lasts
    `working_days` working days counting its first day."""
    if working_days < 1:
        raise ValueError("a public notice lasts at least one working day")
    first = first_working_day_on_or_after(approved_on, is_working_day)
    return NoticeWindow(first, add_working_days(first, working_days - 1, is_working_day), working_days)


STAGE_DEADLINES: Mapping[State, str] = {
    State.SUBMITTED: "formal_check_working_days",
    State.CHECKED: "review_working_days",
    State.REVIEWED: "approval_working_days",
    State.APPROVED: "disbursement_working_days",
}
"""Which parameter sets the deadline of the bureau's next step in each state. The notice has its own window;
a draft, a returned or rejected claim waits for the enterprise, and a disbursed claim waits for nobody."""


def stage_due_on(
    state: State, entered_on: dt.date, days: Mapping[str, int], is_working_day: WorkingDay
) -> dt.date | None:
    """The day by which the bureau's next step is due for a claim that entered `state` on `entered_on`."""
    name = STAGE_DEADLINES.get(state)
    if name is None:
        return None
    return add_working_days(entered_on, days[name], is_working_day)


# ----------------------------------------------------------------------------------------------- facts diff

FactValue = object


@dataclass(frozen=True, slots=True)
class FactChange:
    """One fact that differs between the facts of the last decision and a resubmission."""

    fact: str
    change: str  # added | removed | changed
    before: FactValue
    after: FactValue

    def to_dict(self) -> dict[str, object]:
        return {"fact": self.fact, "change": self.change, "before": self.before, "after": self.after}


def facts_diff(before: Mapping[str, FactValue], after: Mapping[str, FactValue]) -> tuple[FactChange, ...]:
    """Every fact added, removed or changed from `before` to `after`, sorted by fact name.

    A fact present with the value None counts as absent, so sending `null` is the same as leaving a fact out.
    Values compare by type and value: 1 and True differ, and so do "1" and 1.
    """
    b = {k: v for k, v in before.items() if v is not None}
    a = {k: v for k, v in after.items() if v is not None}
    changes: list[FactChange] = []
    for key in sorted(set(b) | set(a)):
        if key not in a:
            changes.append(FactChange(key, "removed", b[key], None))
        elif key not in b:
            changes.append(FactChange(key, "added", None, a[key]))
        elif type(a[key]) is not type(b[key]) or a[key] != b[key]:
            changes.append(FactChange(key, "changed", b[key], a[key]))
    return tuple(changes)


# ----------------------------------------------------------------------------------------------- budgets


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """A programme budget for one fiscal year, in fen.

    appropriated: posted into the budget by appropriations; committed: held by approvals not yet disbursed;
    disbursed: paid out; clawed_back: recovered and returned to the budget;
    available = appropriated + clawed_back − committed − disbursed (the ledger's own available balance).
    """

    appropriated_fen: int
    committed_fen: int
    disbursed_fen: int
    clawed_back_fen: int

    @property
    def available_fen(self) -> int:
        return self.appropriated_fen + self.clawed_back_fen - self.committed_fen - self.disbursed_fen


# ----------------------------------------------------------------------------------------------- penalties


@dataclass(frozen=True, slots=True)
class AmountDue:
    """What a penalty notice asks for on a given day: the fine and the late surcharge (加处罚款)."""

    fine_fen: int
    surcharge_fen: int
    days_late: int

    @property
    def total_fen(self) -> int:
        return self.fine_fen + self.surcharge_fen


def amount_due(fine_fen: int, due_on: dt.date, on: dt.date, surcharge_bp_per_day: int) -> AmountDue:
    """The amount due on `on` for a fine due on `due_on`.

    《中华人民共和国行政处罚法》第七十二条: a party that does not pay by the due day is charged an additional 3 % of
    the fine per day (rate passed in as basis points), and the addition never exceeds the fine itself. Days late
    count from the day after the due day; the surcharge is rounded half up to the fen.
    """
    if fine_fen < 0 or surcharge_bp_per_day < 0:
        raise ValueError("fine and surcharge rate must be >= 0")
    days = max(0, (on - due_on).days)
    raw = (fine_fen * surcharge_bp_per_day * days * 2 + BP) // (2 * BP)
    return AmountDue(fine_fen, min(raw, fine_fen), days)


def penalty_status(paid: bool, due_on: dt.date, today: dt.date) -> str:
    """unpaid, overdue (unpaid after the due day) or paid."""
    if paid:
        return "paid"
    return "overdue" if today > due_on else "unpaid"


# ----------------------------------------------------------------------------------------------- clawback


def years_later(day: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def clawback_open(disbursed_on: dt.date, today: dt.date, window_years: int) -> bool:
    """A disbursed subsidy can be recovered until the window's anniversary (exclusive)."""
    return today < years_later(disbursed_on, window_years)


# ----------------------------------------------------------------------------------------------- numbers


def claim_no(year: int, claim_id: int) -> str:
    """The claim's public number, e.g. CZ2026-000042 (CZ: 财政补贴申报)."""
    return f"CZ{year}-{claim_id:06d}"


def document_no(kind: str, year: int, claim_id: int, sequence: int) -> str:
    """A decision document's number: 决定 (decision), 追回 (clawback), with the claim and its decision count."""
    prefix = {"decision_letter": "JD", "clawback_decision": "ZH"}.get(kind, "WJ")
    return f"{prefix}{year}-{claim_id:06d}-{sequence:02d}"
