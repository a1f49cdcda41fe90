"""Claims keys and double-claim detection (incentives/domain/claims.py)."""

from __future__ import annotations

import pytest

from incentives.domain.claims import Claim, claim_key, conflicts

USCC = "91360100MA35XXXX0X"


def test_keys_are_normalised_so_a_retyped_key_still_collides():
    assert claim_key(USCC, "P-1", "ＳＮ－００１", " inv 9 ") == claim_key(USCC.lower(), "p-1", "SN-001", "INV9")


def test_a_key_needs_the_enterprise():
    with pytest.raises(ValueError):
        claim_key(" ", "P-1")


def test_the_same_key_twice_under_one_programme_conflicts():
    a = Claim("first_set_insurance", claim_key(USCC, "P-1", "SN-1", "INV-1"))
    b = Claim("first_set_insurance", claim_key(USCC, "P-1", "SN-1", "INV-1"))
    (conflict,) = conflicts([a, b], {})
    assert conflict.shared == "key"


def test_the_same_invoice_under_two_projects_conflicts():
    a = Claim("equipment_credit", claim_key(USCC, "P-1", "", "INV-7"))
    b = Claim("equipment_credit", claim_key(USCC, "P-2", "", "INV-7"))
    assert [c.shared for c in conflicts([a, b], {})] == ["invoice"]


def test_exclusive_programmes_on_one_item_conflict_and_others_do_not():
    insurance = Claim("first_set_insurance", claim_key(USCC, "P-1", "SN-1"))
    reward = Claim("jx_first_set_reward", claim_key(USCC, "P-1", "SN-1"))
    assert conflicts([insurance, reward], {}) == []
    (conflict,) = conflicts([insurance, reward], {"jx_first_set_reward": ["first_set_insurance"]})
    assert "exclude each other" in conflict.reason


def test_different_enterprises_never_conflict():
    a = Claim("equipment_credit", claim_key(USCC, "P-1", "SN-1", "INV-1"))
    b = Claim("equipment_credit", claim_key("91360100MA35YYYY0Y", "P-1", "SN-1", "INV-1"))
    assert conflicts([a, b], {}) == []
