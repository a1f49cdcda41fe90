"""The subsidy-claim workflow (domain.md section 7) as one transition table.

A claim moves only along the table below; every other (state, action) pair is refused with the current state
named, so a client always learns what the claim is waiting for. The table is data, and
`tests/finance/test_workflow.py` walks every pair of it.

    draft ──submit──▶ submitted ──pass_formal_check──▶ checked ──review──▶ reviewed ──approve──▶ in_notice
                        │  ▲                                                                      │
             return_for_correction                                                     finalise (after 公示)
                        ▼  │ submit (resubmission)                                                ▼
                      returned                                            approved ──disburse──▶ disbursed
                                                                                                  │
    submitted / checked / reviewed / in_notice / approved ──reject──▶ rejected ──submit──▶ …      clawback
                                                                                                  ▼
                                                                                              clawed_back

- `approve` is the four-eyes step: the approver must differ from the submitter and from the reviewer (the
  service checks it and the database repeats it as a CHECK constraint). Approval commits the budget (a
  pending ledger transfer) and opens the public notice (公示) of N working days.
- `finalise` makes the approval final once the notice period has passed without a valid objection; an
  objection upheld during the notice is a `reject`, which releases the committed budget.
- `reject` always carries a reason. A rejected or returned claim can be corrected and submitted again; the
  resubmission records what changed in its facts since that decision.
- `clawback` recovers a disbursed amount (in full or in part) where the rules say, within the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    CHECKED = "checked"
    REVIEWED = "reviewed"
    IN_NOTICE = "in_notice"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISBURSED = "disbursed"
    CLAWED_BACK = "clawed_back"


class Action(StrEnum):
    SUBMIT = "submit"
    PASS_FORMAL_CHECK = "pass_formal_check"  # noqa: S105 (an action name, not a password)
    RETURN_FOR_CORRECTION = "return_for_correction"
    REVIEW = "review"
    APPROVE = "approve"
    FINALISE = "finalise"
    REJECT = "reject"
    DISBURSE = "disburse"
    CLAWBACK = "clawback"


S = State
A = Action

TRANSITIONS: Mapping[tuple[State, Action], State] = {
    (S.DRAFT, A.SUBMIT): S.SUBMITTED,
    (S.RETURNED, A.SUBMIT): S.SUBMITTED,
    (S.REJECTED, A.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, A.PASS_FORMAL_CHECK): S.CHECKED,
    (S.SUBMITTED, A.RETURN_FOR_CORRECTION): S.RETURNED,
    (S.CHECKED, A.REVIEW): S.REVIEWED,
    (S.REVIEWED, A.APPROVE): S.IN_NOTICE,
    (S.IN_NOTICE, A.FINALISE): S.APPROVED,
    (S.SUBMITTED, A.REJECT): S.REJECTED,
    (S.CHECKED, A.REJECT): S.REJECTED,
    (S.REVIEWED, A.REJECT): S.REJECTED,
    (S.IN_NOTICE, A.REJECT): S.REJECTED,
    (S.APPROVED, A.REJECT): S.REJECTED,
    (S.APPROVED, A.DISBURSE): S.DISBURSED,
    (S.DISBURSED, A.CLAWBACK): S.CLAWED_BACK,
}
"""(current state, action) → next state. Anything not listed is refused."""

TERMINAL: frozenset[State] = frozenset({S.CLAWED_BACK})
"""States no action leaves (a rejected claim can still be resubmitted, so it is not terminal)."""

DECISIONS: frozenset[Action] = frozenset({A.RETURN_FOR_CORRECTION, A.REJECT, A.FINALISE})
"""Actions that decide on the claim's facts: a later resubmission shows what changed since the last of them."""

HOLDS_BUDGET: frozenset[State] = frozenset({S.IN_NOTICE, S.APPROVED})
"""States in which the claim's amount is committed on the budget (a pending ledger transfer)."""


class TransitionRefused(Exception):
    """The action is not allowed in the claim's current state; says which actions are."""

    def __init__(self, state: State, action: Action) -> None:
        self.state = state
        self.action = action
        self.allowed = allowed_actions(state)
        allowed = ", ".join(a.value for a in self.allowed) or "none"
        super().__init__(f"The claim is {state.value}; {action.value} is not possible now (possible: {allowed}).")


def allowed_actions(state: State) -> tuple[Action, ...]:
    """The actions the table allows from `state`, in the order of the Action enum."""
    return tuple(a for a in Action if (state, a) in TRANSITIONS)


def next_state(state: State | str, action: Action | str) -> State:
    """The state after `action`, or TransitionRefused naming the current state."""
    current = State(state)
    act = Action(action)
    target = TRANSITIONS.get((current, act))
    if target is None:
        raise TransitionRefused(current, act)
    return target


def reachable_from(state: State) -> frozenset[State]:
    """Every state reachable from `state` along the table (used to check that no state is a dead end)."""
    seen: set[State] = {state}
    frontier = [state]
    while frontier:
        here = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src == here and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    return frozenset(seen)
