"""Block trades: size, ±30% band, two distinct members, the block session, and confirmation by both."""

from __future__ import annotations

from datetime import UTC, datetime

from trading.domain.block import (
    BlockRules,
    BlockStatus,
    BlockTrade,
    confirm_block_trade,
    propose_block_trade,
    validate_block_trade,
)

AFTERNOON = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)  # Monday 14:00 Shanghai
MORNING = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # Monday 10:00 Shanghai: not a block session
CLOSE = 10_000


def codes(violations: tuple) -> list[str]:
    return [v.code for v in violations]


def test_valid_terms_pass() -> None:
    assert validate_block_trade("B", "S", 12_000, 100_000, prev_close_fen=CLOSE, now=AFTERNOON) == ()


def test_every_broken_rule_is_reported_at_once() -> None:
    found = validate_block_trade("M", "M", 13_001, 99_999, prev_close_fen=CLOSE, now=MORNING)
    assert codes(found) == ["same-member", "below-block-minimum", "outside-band", "market-closed"]


def test_the_band_is_thirty_percent_with_edges_rounded_inward() -> None:
    # 5,555 × 0.7 = 3,888.5 → 3,889; 5,555 × 1.3 = 7,221.5 → 7,221.
    for price, ok in ((3_888, False), (3_889, True), (7_221, True), (7_222, False)):
        found = validate_block_trade("B", "S", price, 100_000, prev_close_fen=5_555, now=AFTERNOON)
        assert (found == ()) is ok, price


def test_lot_tick_and_session_rules_are_configurable() -> None:
    rules = BlockRules(tick_fen=10, lot_quantity=1_000, check_session=False)
    found = validate_block_trade("B", "S", 10_005, 100_500, prev_close_fen=CLOSE, now=MORNING, rules=rules)
    assert codes(found) == ["off-lot", "off-tick"]


def test_a_holiday_closes_the_block_session() -> None:
    found = validate_block_trade(
        "B", "S", 10_000, 100_000, prev_close_fen=CLOSE, now=AFTERNOON, is_working_day=lambda day: False
    )
    assert codes(found) == ["market-closed"]


def test_proposal_then_counterparty_confirmation_makes_it_executable() -> None:
    terms = BlockTrade(7, buyer="B", seller="S", price_fen=10_500, quantity=200_000)
    proposed = propose_block_trade(terms, "S", prev_close_fen=CLOSE, now=AFTERNOON)
    assert proposed.ok and proposed.trade is not None
    assert proposed.trade.status is BlockStatus.PROPOSED
    assert (proposed.trade.buyer_confirmed, proposed.trade.seller_confirmed) == (False, True)
    confirmed = confirm_block_trade(proposed.trade, "B", prev_close_fen=CLOSE, now=AFTERNOON)
    assert confirmed.ok and confirmed.trade is not None
    assert confirmed.trade.status is BlockStatus.CONFIRMED
    assert confirmed.trade.notional_fen(0) == 200_000 * 10_500


def test_only_the_counterparty_can_confirm_and_only_once() -> None:
    terms = BlockTrade(7, buyer="B", seller="S", price_fen=10_500, quantity=200_000)
    proposed = propose_block_trade(terms, "S", prev_close_fen=CLOSE, now=AFTERNOON).trade
    assert proposed is not None
    stranger = confirm_block_trade(proposed, "X", prev_close_fen=CLOSE, now=AFTERNOON)
    assert codes(stranger.violations) == ["not-a-party"]
    assert stranger.trade == proposed
    again = confirm_block_trade(proposed, "S", prev_close_fen=CLOSE, now=AFTERNOON)
    assert codes(again.violations) == ["already-confirmed"]


def test_a_stranger_cannot_propose_and_a_late_confirmation_is_refused() -> None:
    terms = BlockTrade(7, buyer="B", seller="S", price_fen=10_500, quantity=200_000)
    assert codes(propose_block_trade(terms, "X", prev_close_fen=CLOSE, now=AFTERNOON).violations) == ["not-a-party"]
    proposed = propose_block_trade(terms, "B", prev_close_fen=CLOSE, now=AFTERNOON).trade
    assert proposed is not None
    after_close = datetime(2025, 3, 3, 7, 0, tzinfo=UTC)  # 15:00 Shanghai
    late = confirm_block_trade(proposed, "S", prev_close_fen=CLOSE, now=after_close)
    assert codes(late.violations) == ["market-closed"]
    assert late.trade is not None and late.trade.status is BlockStatus.PROPOSED
