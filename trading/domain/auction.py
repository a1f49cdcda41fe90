"""Auctions: the one-way auction (单向竞价) of the national market and the regulator's primary auction.

`clear_auction(spec, bids, seed)` is a pure function from the auction's terms and its sealed bids to an
`AuctionResult` with one allocation per valid bid (quantity and price in fen, zero quantity for a losing
bid), the bids refused and why, and a reason when nothing is sold.

One-way auction (`OneWayAuctionSpec`): a seller offers at least 100,000 units; bids must lie within the
seller's floor and ceiling, which themselves must lie within ±10% of the previous close (band edges rounded
inward). Bids rank by price descending, then submission time (`seq`), then bid id; the volume goes down the
ranking, the marginal bid partly. Uniform pricing charges every winner the lowest accepted bid's price;
pay-as-bid charges each winner its own price. Volume nobody bid for stays unsold with the seller.

Primary auction (`PrimaryAuctionSpec`, Commission Regulation (EU) No 1031/2010 Art. 7): single round,
sealed bids, uniform clearing price = the price of the bid at which the cumulative volume bid, ranked by
price descending, reaches the volume offered. Bids at the same price rank in a random order fixed before the
auction from the seed: `random.Random(seed)` shuffles the bid ids sorted ascending, so the order depends on
the seed and the ids only, never on hash order or submission order. A bidder may win at most
`bidder_cap_bps` of the volume (RGGI: 25%): each bidder's bids are trimmed, best-ranked first, down to
that cap before clearing (a trim is rounded down to the lot). The auction is cancelled when the trimmed bids
cover less than the volume, or when the clearing price is below the reserve price.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.figures import quantity as quantity_text
from trading.domain.bands import BPS_PER_UNIT, price_band
from trading.domain.money import notional_fen


class Pricing(StrEnum):
    UNIFORM = "uniform"
    PAY_AS_BID = "pay-as-bid"


class AuctionStatus(StrEnum):
    CLEARED = "cleared"
    CANCELLED = "cancelled"
    INVALID_SPEC = "invalid-spec"


@dataclass(frozen=True, slots=True)
class OneWayAuctionSpec:
    """A seller's one-way auction: `volume` units, bids accepted from `floor_fen` to `ceiling_fen`."""

    volume: int
    prev_close_fen: int
    floor_fen: int
    ceiling_fen: int
    pricing: Pricing = Pricing.UNIFORM
    tick_fen: int = 1
    lot_quantity: int = 1
    volume_min: int = 100_000
    band_bps: int = 1000


@dataclass(frozen=True, slots=True)
class PrimaryAuctionSpec:
    """The regulator's sealed-bid auction of `volume` allowances."""

    volume: int
    reserve_price_fen: int | None = None
    bidder_cap_bps: int | None = 2500
    tick_fen: int = 1
    lot_quantity: int = 1


AuctionSpec = OneWayAuctionSpec | PrimaryAuctionSpec


@dataclass(frozen=True, slots=True)
class Bid:
    """One sealed bid. `seq` is the submission order (time priority in the one-way auction)."""

    bid_id: int
    bidder: str
    price_fen: int
    quantity: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Allocation:
    bid_id: int
    bidder: str
    quantity: int
    price_fen: int

    def amount_fen(self, scale: int) -> int:
        """What the bidder pays: `money.notional_fen` of the allocation (prices are per display unit)."""
        return notional_fen(self.price_fen, self.quantity, scale)


@dataclass(frozen=True, slots=True)
class BidRejection:
    """A bid left out of the auction, with a stable code (e.g. `below-floor`, `duplicate-bid-id`)."""

    bid_id: int
    code: str


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """The outcome. Allocations follow the auction's ranking; losing valid bids appear with quantity 0.

    `clearing_price_fen` is the uniform price, or under pay-as-bid the lowest accepted price; None when
    nothing is sold. `tie_order` is the seeded random order of bid ids (primary auction), kept for audit.
    """

    status: AuctionStatus
    clearing_price_fen: int | None
    sold_quantity: int
    unsold_quantity: int
    allocations: tuple[Allocation, ...]
    rejected: tuple[BidRejection, ...]
    reason: str | None = None
    tie_order: tuple[int, ...] = ()

    def proceeds_fen(self, scale: int) -> int:
        return sum(allocation.amount_fen(scale) for allocation in self.allocations)


def _screen_bids(
    bids: Sequence[Bid], tick_fen: int, lot_quantity: int, floor_fen: int, ceiling_fen: int | None
) -> tuple[list[Bid], list[BidRejection]]:
    """Valid bids in input order, and every refused bid with the first rule it breaks."""
    valid: list[Bid] = []
    rejected: list[BidRejection] = []
    seen: set[int] = set()
    for bid in bids:
        code: str | None = None
        if bid.bid_id in seen:
            code = "duplicate-bid-id"
        elif bid.quantity <= 0:
            code = "invalid-quantity"
        elif bid.quantity % lot_quantity:
            code = "off-lot"
        elif bid.price_fen <= 0:
            code = "invalid-price"
        elif bid.price_fen % tick_fen:
            code = "off-tick"
        elif bid.price_fen < floor_fen:
            code = "below-floor"
        elif ceiling_fen is not None and bid.price_fen > ceiling_fen:
            code = "above-ceiling"
        seen.add(bid.bid_id)
        if code is None:
            valid.append(bid)
        else:
            rejected.append(BidRejection(bid.bid_id, code))
    return valid, rejected


def _one_way_spec_errors(spec: OneWayAuctionSpec) -> list[str]:
    errors: list[str] = []
    if spec.tick_fen <= 0 or spec.lot_quantity <= 0:
        errors.append("tick and lot must be positive")
        return errors
    if spec.prev_close_fen <= 0:
        errors.append("the previous close must be positive")
        return errors
    if spec.volume < spec.volume_min:
        errors.append(f"volume {spec.volume} is below the minimum {spec.volume_min}")
    if spec.volume % spec.lot_quantity:
        errors.append("volume is not a whole number of lots")
    if spec.floor_fen > spec.ceiling_fen:
        errors.append("the floor is above the ceiling")
    if spec.floor_fen % spec.tick_fen or spec.ceiling_fen % spec.tick_fen:
        errors.append("floor and ceiling must be on the tick")
    band = price_band(spec.prev_close_fen, spec.band_bps, spec.tick_fen)
    if spec.floor_fen < band.lower_fen:
        errors.append(f"the floor {spec.floor_fen} is below the band's lower edge {band.lower_fen}")
    if spec.ceiling_fen > band.upper_fen:
        errors.append(f"the ceiling {spec.ceiling_fen} is above the band's upper edge {band.upper_fen}")
    return errors


def _primary_spec_errors(spec: PrimaryAuctionSpec) -> list[str]:
    errors: list[str] = []
    if spec.tick_fen <= 0 or spec.lot_quantity <= 0:
        errors.append("tick and lot must be positive")
        return errors
    if spec.volume <= 0 or spec.volume % spec.lot_quantity:
        errors.append("volume must be a positive whole number of lots")
    if spec.reserve_price_fen is not None and spec.reserve_price_fen <= 0:
        errors.append("the reserve price must be positive")
    if spec.bidder_cap_bps is not None and not 0 < spec.bidder_cap_bps <= BPS_PER_UNIT:
        errors.append("the bidder cap must be between 1 and 10,000 basis points")
    return errors


def _invalid(errors: list[str]) -> AuctionResult:
    return AuctionResult(AuctionStatus.INVALID_SPEC, None, 0, 0, (), (), "; ".join(errors))


def _allocate(quantities: list[int], volume: int) -> list[int]:
    """Walk the ranking handing out `volume`; the marginal bid gets what is left."""
    left = volume
    awarded: list[int] = []
    for quantity in quantities:
        take = min(quantity, left)
        awarded.append(take)
        left -= take
    return awarded


def _clear_one_way(spec: OneWayAuctionSpec, bids: Sequence[Bid]) -> AuctionResult:
    errors = _one_way_spec_errors(spec)
    if errors:
        return _invalid(errors)
    valid, rejected = _screen_bids(bids, spec.tick_fen, spec.lot_quantity, spec.floor_fen, spec.ceiling_fen)
    ranked = sorted(valid, key=lambda bid: (-bid.price_fen, bid.seq, bid.bid_id))
    awarded = _allocate([bid.quantity for bid in ranked], spec.volume)
    sold = sum(awarded)
    if sold == 0:
        return AuctionResult(AuctionStatus.CANCELLED, None, 0, spec.volume, (), tuple(rejected), "no valid bids")
    lowest_accepted = min(bid.price_fen for bid, quantity in zip(ranked, awarded, strict=True) if quantity)
    allocations = tuple(
        Allocation(
            bid.bid_id,
            bid.bidder,
            quantity,
            lowest_accepted if spec.pricing is Pricing.UNIFORM else bid.price_fen,
        )
        for bid, quantity in zip(ranked, awarded, strict=True)
    )
    return AuctionResult(AuctionStatus.CLEARED, lowest_accepted, sold, spec.volume - sold, allocations, tuple(rejected))


def tie_order(bid_ids: Sequence[int], seed: int) -> tuple[int, ...]:
    """The seeded random order of bid ids used to break price ties: shuffle of the ids sorted ascending."""
    order = sorted(bid_ids)
    random.Random(seed).shuffle(order)
    return tuple(order)


def _clear_primary(spec: PrimaryAuctionSpec, bids: Sequence[Bid], seed: int) -> AuctionResult:
    errors = _primary_spec_errors(spec)
    if errors:
        return _invalid(errors)
    valid, rejected = _screen_bids(bids, spec.tick_fen, spec.lot_quantity, 1, None)
    order = tie_order([bid.bid_id for bid in valid], seed)
    rank = {bid_id: index for index, bid_id in enumerate(order)}
    ranked = sorted(valid, key=lambda bid: (-bid.price_fen, rank[bid.bid_id]))

    # Per-bidder cap: trim each bidder's bids in ranking order so that their sum never exceeds the cap.
    quantities: list[int] = []
    if spec.bidder_cap_bps is None:
        quantities = [bid.quantity for bid in ranked]
    else:
        cap = spec.volume * spec.bidder_cap_bps // BPS_PER_UNIT
        cap -= cap % spec.lot_quantity
        used: dict[str, int] = {}
        for bid in ranked:
            allowed = max(cap - used.get(bid.bidder, 0), 0)
            quantity = min(bid.quantity, allowed)
            used[bid.bidder] = used.get(bid.bidder, 0) + quantity
            quantities.append(quantity)

    covered = sum(quantities)
    if covered < spec.volume:
        return AuctionResult(
            AuctionStatus.CANCELLED,
            None,
            0,
            spec.volume,
            (),
            tuple(rejected),
            f"bids cover {quantity_text(covered)} of {quantity_text(spec.volume)} units offered",
            order,
        )
    awarded = _allocate(quantities, spec.volume)
    # The clearing bid is the last one receiving units: there the cumulative volume reaches the offer.
    clearing_price_fen = min(bid.price_fen for bid, quantity in zip(ranked, awarded, strict=True) if quantity)
    if spec.reserve_price_fen is not None and clearing_price_fen < spec.reserve_price_fen:
        return AuctionResult(
            AuctionStatus.CANCELLED,
            None,
            0,
            spec.volume,
            (),
            tuple(rejected),
            f"clearing price {clearing_price_fen} is below the reserve price {spec.reserve_price_fen}",
            order,
        )
    allocations = tuple(
        Allocation(bid.bid_id, bid.bidder, quantity, clearing_price_fen)
        for bid, quantity in zip(ranked, awarded, strict=True)
    )
    return AuctionResult(
        AuctionStatus.CLEARED, clearing_price_fen, spec.volume, 0, allocations, tuple(rejected), None, order
    )


def clear_auction(spec: AuctionSpec, bids: Sequence[Bid], seed: int = 0) -> AuctionResult:
    """Clear one auction. `seed` fixes the tie order of the primary auction (unused by one-way auctions)."""
    if isinstance(spec, OneWayAuctionSpec):
        return _clear_one_way(spec, bids)
    return _clear_primary(spec, bids, seed)
