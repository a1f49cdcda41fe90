"""The claim workflow's transition table (finance/domain/workflow.py), walked exhaustively: every pair in the
table moves to its target, every pair outside it is refused naming the current state."""

from __future__ import annotations

import itertools

import pytest

from finance.domain import workflow as wf
from finance.domain.workflow import Action, State

ALL_PAIRS = list(itertools.product(State, Action))

# The workflow as domain.md section 7 states it, written out independently of the table under test.
EXPECTED = {
    ("draft", "submit"): "submitted",
    ("submitted", "pass_formal_check"): "checked",
    ("submitted", "return_for_correction"): "returned",
    ("returned", "submit"): "submitted",
    ("checked", "review"): "reviewed",
    ("reviewed", "approve"): "in_notice",
    ("in_notice", "finalise"): "approved",
    ("approved", "disburse"): "disbursed",
    ("disbursed", "clawback"): "clawed_back",
    ("submitted", "reject"): "rejected",
    ("checked", "reject"): "rejected",
    ("reviewed", "reject"): "rejected",
    ("in_notice", "reject"): "rejected",
    ("approved", "reject"): "rejected",
    ("rejected", "submit"): "submitted",
}


@pytest.mark.parametrize(("state", "action"), ALL_PAIRS, ids=[f"{s.value}-{a.value}" for s, a in ALL_PAIRS])
def test_every_state_action_pair_moves_as_the_workflow_says_or_is_refused_naming_the_state(
    state: State, action: Action
) -> None:
    expected = EXPECTED.get((state.value, action.value))
    if expected is not None:
        assert wf.next_state(state, action) == State(expected)
        assert action in wf.allowed_actions(state)
        return
    with pytest.raises(wf.TransitionRefused) as err:
        wf.next_state(state, action)
    assert err.value.state == state
    assert f"The claim is {state.value}" in str(err.value)
    assert action not in err.value.allowed
    assert action not in wf.allowed_actions(state)


def test_the_table_has_exactly_the_workflow_transitions() -> None:
    assert {(s.value, a.value): t.value for (s, a), t in wf.TRANSITIONS.items()} == EXPECTED


def test_states_and_actions_accept_their_string_names() -> None:
    assert wf.next_state("reviewed", "approve") is State.IN_NOTICE
    with pytest.raises(ValueError):
        wf.next_state("paid", "approve")


def test_every_state_is_reachable_from_a_draft_and_only_clawback_is_terminal() -> None:
    assert wf.reachable_from(State.DRAFT) == frozenset(State)
    dead_ends = {s for s in State if not wf.allowed_actions(s)}
    assert dead_ends == set(wf.TERMINAL) == {State.CLAWED_BACK}


def test_the_budget_is_held_only_between_approval_and_disbursement() -> None:
    assert {State.IN_NOTICE, State.APPROVED} == wf.HOLDS_BUDGET
    # A held claim can always be released: rejecting it is in the table.
    for state in wf.HOLDS_BUDGET:
        assert wf.next_state(state, Action.REJECT) is State.REJECTED


def test_a_refusal_lists_what_is_possible_now() -> None:
    with pytest.raises(wf.TransitionRefused) as err:
        wf.next_state(State.IN_NOTICE, Action.DISBURSE)
    assert err.value.allowed == (Action.FINALISE, Action.REJECT)
    assert "possible: finalise, reject" in str(err.value)
    with pytest.raises(wf.TransitionRefused) as err:
        wf.next_state(State.CLAWED_BACK, Action.SUBMIT)
    assert "possible: none" in str(err.value)
