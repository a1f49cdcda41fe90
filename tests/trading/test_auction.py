"""Golden tests for auction clearing: one-way (uniform and pay-as-bid) and the primary sealed-bid auction."""

from __future__ import annotations

import random

from trading.domain.auction import (
    Allocation,
    AuctionStatus,
    Bid,
    BidRejection,
    OneWayAuctionSpec,
    Pricing,
    PrimaryAuctionSpec,
    clear_auction,
    tie_order,
)

# ---------------------------------------------------------------- one-way auction (单向竞价)

ONE_WAY_BIDS = [
    Bid(1, "A", 10_500, 40_000, seq=1),
    Bid(2, "B", 10_200, 50_000, seq=2),
    Bid(3, "C", 10_200, 30_000, seq=3),
    Bid(4, "D", 9_500, 50_000, seq=4),
]


def one_way(pricing: Pricing, **changes: int) -> OneWayAuctionSpec:
    terms = {"volume": 100_000, "prev_close_fen": 10_000, "floor_fen": 9_000, "ceiling_fen": 11_000}
    terms.update(changes)
    return OneWayAuctionSpec(pricing=pricing, **terms)


def test_one_way_uniform_price_is_the_lowest_accepted_bid() -> None:
    result = clear_auction(one_way(Pricing.UNIFORM), ONE_WAY_BIDS)
    assert result.status is AuctionStatus.CLEARED
    assert result.clearing_price_fen == 10_200
    assert result.allocations == (
        Allocation(1, "A", 40_000, 10_200),
        Allocation(2, "B", 50_000, 10_200),
        Allocation(3, "C", 10_000, 10_200),
        Allocation(4, "D", 0, 10_200),
    )
    assert (result.sold_quantity, result.unsold_quantity) == (100_000, 0)
    assert result.proceeds_fen(0) == 100_000 * 10_200


def test_one_way_pay_as_bid_charges_each_winner_its_own_price() -> None:
    result = clear_auction(one_way(Pricing.PAY_AS_BID), ONE_WAY_BIDS)
    assert [(a.bid_id, a.quantity, a.price_fen) for a in result.allocations if a.quantity] == [
        (1, 40_000, 10_500),
        (2, 50_000, 10_200),
        (3, 10_000, 10_200),
    ]
    assert result.clearing_price_fen == 10_200
    assert result.proceeds_fen(0) == 40_000 * 10_500 + 60_000 * 10_200


def test_one_way_equal_prices_rank_by_submission_time() -> None:
    later_first = [Bid(3, "C", 10_200, 30_000, seq=1), Bid(2, "B", 10_200, 90_000, seq=2)]
    result = clear_auction(one_way(Pricing.UNIFORM), later_first)
    assert [(a.bid_id, a.quantity) for a in result.allocations] == [(3, 30_000), (2, 70_000)]


def test_one_way_undersubscribed_sells_what_was_bid() -> None:
    result = clear_auction(one_way(Pricing.UNIFORM), [Bid(1, "A", 9_800, 30_000)])
    assert (result.status, result.sold_quantity, result.unsold_quantity) == (AuctionStatus.CLEARED, 30_000, 70_000)
    assert result.clearing_price_fen == 9_800


def test_one_way_bids_outside_floor_and_ceiling_are_refused() -> None:
    bids = [Bid(1, "A", 8_999, 10), Bid(2, "B", 11_001, 10), Bid(3, "C", 10_000, 0), Bid(3, "D", 10_000, 5)]
    result = clear_auction(one_way(Pricing.UNIFORM), bids)
    assert result.rejected == (
        BidRejection(1, "below-floor"),
        BidRejection(2, "above-ceiling"),
        BidRejection(3, "invalid-quantity"),
        BidRejection(3, "duplicate-bid-id"),
    )
    assert result.status is AuctionStatus.CANCELLED
    assert result.reason == "no valid bids"


def test_one_way_terms_must_respect_the_minimum_volume_and_the_band() -> None:
    # ±10% of 10,000 fen is 9,000 .. 11,000: a floor of 8,999 and a ceiling of 11,001 are both outside.
    result = clear_auction(one_way(Pricing.UNIFORM, volume=99_999, floor_fen=8_999, ceiling_fen=11_001), [])
    assert result.status is AuctionStatus.INVALID_SPEC
    assert result.reason is not None
    assert "below the minimum 100000" in result.reason
    assert "below the band's lower edge 9000" in result.reason
    assert "above the band's upper edge 11000" in result.reason


# ---------------------------------------------------------------- primary auction (EU 1031/2010 Art. 7)

TIED_BIDS = [
    Bid(1, "A", 5_000, 250),
    Bid(2, "B", 4_900, 250),
    Bid(3, "C", 4_800, 250),
    Bid(4, "D", 4_800, 250),
    Bid(5, "E", 4_800, 250),
]


def awarded(result: object) -> dict[int, int]:
    return {a.bid_id: a.quantity for a in result.allocations}  # type: ignore[attr-defined]


def test_primary_clearing_price_is_where_cumulative_volume_reaches_the_offer() -> None:
    result = clear_auction(PrimaryAuctionSpec(volume=1_000), TIED_BIDS, seed=0)
    assert result.status is AuctionStatus.CLEARED
    assert result.clearing_price_fen == 4_800
    assert all(a.price_fen == 4_800 for a in result.allocations)
    assert result.sold_quantity == 1_000


def test_primary_ties_are_broken_by_the_seeded_order_fixed_before_the_auction() -> None:
    # Seed 0 orders the ids (3, 2, 1, 5, 4): among the tied bids 3, 4, 5 at 4,800, bids 3 and 5 win.
    assert tie_order([1, 2, 3, 4, 5], 0) == (3, 2, 1, 5, 4)
    assert awarded(clear_auction(PrimaryAuctionSpec(volume=1_000), TIED_BIDS, seed=0)) == {
        1: 250,
        2: 250,
        3: 250,
        5: 250,
        4: 0,
    }
    # Seed 4 orders them (4, 5, 1, 3, 2): now bids 4 and 5 win and bid 3 loses.
    assert tie_order([1, 2, 3, 4, 5], 4) == (4, 5, 1, 3, 2)
    assert awarded(clear_auction(PrimaryAuctionSpec(volume=1_000), TIED_BIDS, seed=4))[3] == 0


def test_primary_tie_break_ignores_submission_order() -> None:
    shuffled = TIED_BIDS[:]
    random.Random(99).shuffle(shuffled)
    spec = PrimaryAuctionSpec(volume=1_000)
    assert clear_auction(spec, shuffled, seed=0) == clear_auction(spec, TIED_BIDS, seed=0)


def test_primary_marginal_bid_is_partly_filled() -> None:
    # Without a cap (a 25% cap of 900 would trim every bid to 225).
    result = clear_auction(PrimaryAuctionSpec(volume=900, bidder_cap_bps=None), TIED_BIDS, seed=0)
    assert awarded(result) == {1: 250, 2: 250, 3: 250, 5: 150, 4: 0}
    assert result.clearing_price_fen == 4_800


def test_primary_per_bidder_cap_trims_the_best_bids_first() -> None:
    bids = [
        Bid(1, "A", 6_000, 200),
        Bid(2, "A", 5_800, 200),
        Bid(3, "B", 5_500, 600),
        Bid(4, "C", 5_000, 300),
        Bid(5, "D", 4_500, 400),
    ]
    result = clear_auction(PrimaryAuctionSpec(volume=1_000), bids, seed=1)
    # Cap 25% of 1,000 = 250 per bidder: A 200 + 50 (its second bid trimmed), B 250 of 600, C 250, D 250.
    assert awarded(result) == {1: 200, 2: 50, 3: 250, 4: 250, 5: 250}
    assert result.clearing_price_fen == 4_500


def test_primary_is_cancelled_when_bids_cover_less_than_the_volume() -> None:
    result = clear_auction(PrimaryAuctionSpec(volume=1_000), TIED_BIDS[:3], seed=0)
    assert result.status is AuctionStatus.CANCELLED
    assert result.reason == "bids cover 750 of 1,000 units offered"
    assert (result.allocations, result.sold_quantity, result.unsold_quantity) == ((), 0, 1_000)


def test_primary_cap_can_leave_the_auction_undersubscribed() -> None:
    result = clear_auction(PrimaryAuctionSpec(volume=1_000), [Bid(1, "A", 5_000, 1_000)], seed=0)
    assert result.status is AuctionStatus.CANCELLED
    assert result.reason == "bids cover 250 of 1,000 units offered"
    uncapped = clear_auction(PrimaryAuctionSpec(volume=1_000, bidder_cap_bps=None), [Bid(1, "A", 5_000, 1_000)])
    assert uncapped.status is AuctionStatus.CLEARED


def test_primary_is_cancelled_below_the_reserve_price() -> None:
    below = clear_auction(PrimaryAuctionSpec(volume=1_000, reserve_price_fen=4_900), TIED_BIDS, seed=0)
    assert below.status is AuctionStatus.CANCELLED
    assert below.reason == "clearing price 4800 is below the reserve price 4900"
    at_reserve = clear_auction(PrimaryAuctionSpec(volume=1_000, reserve_price_fen=4_800), TIED_BIDS, seed=0)
    assert at_reserve.status is AuctionStatus.CLEARED


def test_primary_invalid_terms_are_reported() -> None:
    result = clear_auction(PrimaryAuctionSpec(volume=0, bidder_cap_bps=0), TIED_BIDS)
    assert result.status is AuctionStatus.INVALID_SPEC
    assert result.reason is not None and "volume" in result.reason and "cap" in result.reason


def test_primary_off_tick_and_off_lot_bids_are_refused() -> None:
    spec = PrimaryAuctionSpec(volume=100, tick_fen=10, lot_quantity=10, bidder_cap_bps=None)
    result = clear_auction(spec, [Bid(1, "A", 5_005, 100), Bid(2, "B", 5_000, 105), Bid(3, "C", 5_000, 100)])
    assert result.rejected == (BidRejection(1, "off-tick"), BidRejection(2, "off-lot"))
    assert awarded(result) == {3: 100}
