"""Request and response shapes of the trading API.

Prices are decimal strings in yuan with at most 2 decimals ("52.30") and quantities decimal strings in the
instrument's display unit (tCO2e, tce with 3 decimals, ...); both are parsed strictly at the edge
(`core.quantity`): no floats, exponents, signs or extra decimals, never rounded. Responses give each amount
twice: as the display string and as the integer base amount (`*_fen`, `*_base`). Requests forbid unknown
fields, so server-owned fields (status, filled, organisation) cannot be set by a client.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from core.schema import Amount, Id, Note, OptAmount, Req

Bps = Annotated[int, msgspec.Meta(ge=0, le=5000)]
FeeBps = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Reference = Annotated[str, msgspec.Meta(max_length=100)]


class CreateMarket(Req):
    instrument_id: Id
    mode: Literal["listed", "continuous"]
    # The reference price the first day's band is built around, in yuan (the previous close of day one).
    reference_price: Amount
    band_bps: Bps = 1000
    block_band_bps: Bps = 3000
    taker_fee_bps: FeeBps = 0
    maker_fee_bps: FeeBps = 0
    # Largest order on the book, in display units; the national listed agreement rule is "under 100,000".
    quantity_max: OptAmount = None
    # Price step in yuan (national rule: 0.01) and quantity step in display units (national rule: 1 base unit).
    tick: Amount = "0.01"
    lot: OptAmount = None
    stp: Literal["cancel-taker", "cancel-maker", "cancel-both"] = "cancel-taker"


class PlaceOrder(Req):
    instrument_id: Id
    account_id: Id
    side: Literal["buy", "sell"]
    quantity: Amount
    kind: Literal["limit", "market", "ioc", "fok"] = "limit"
    price: OptAmount = None
    # Listed mode (摘牌): take this listing of the other side at its price; `price` must then be omitted.
    listing_id: Id | None = None


class ProposeBlockTrade(Req):
    instrument_id: Id
    account_id: Id
    side: Literal["buy", "sell"]
    counterparty_organisation_id: Id
    price: Amount
    quantity: Amount


class AcceptBlockTrade(Req):
    account_id: Id


class CreateAuction(Req):
    instrument_id: Id
    type: Literal["primary", "one-way"]
    volume: Amount
    account_id: Id | None = None
    floor_price: OptAmount = None
    ceiling_price: OptAmount = None
    pricing: Literal["uniform", "pay-as-bid"] = "uniform"
    reserve_price: OptAmount = None
    bidder_cap_bps: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = 2500


class SubmitBid(Req):
    account_id: Id
    price: Amount
    quantity: Amount


class FundRequest(Req):
    amount: Amount
    reference: Reference = ""
    # The settlement bank that holds the money and decides this movement (an organisation of kind bank). It may be
    # left out while the installation has exactly one settlement bank.
    bank_organisation_id: Id | None = None


class FundDecision(Req):
    """The settlement bank's decision on a deposit or withdrawal: it must be said, never assumed."""

    decision: Literal["confirm", "reject"]
    reference: Reference = ""


class CloseDay(Req):
    """Closing before today's sessions end needs `early_close: true` and a `reason` (audited)."""

    trade_date: dt.date | None = None
    early_close: bool = False
    reason: Note = ""


class MarketOut(msgspec.Struct, kw_only=True):
    id: int
    instrument_id: int
    instrument_code: str
    kind: str
    mode: str
    status: str
    display_unit: str
    prev_close: str
    prev_close_fen: int
    last_close_date: dt.date | None
    band_lower: str
    band_upper: str
    band_lower_fen: int
    band_upper_fen: int
    block_band_lower: str
    block_band_upper: str
    band_bps: int
    block_band_bps: int
    tick: str
    lot: str
    quantity_max: str | None
    block_quantity_min: str
    taker_fee_bps: int
    maker_fee_bps: int
    stp: str


class FillOut(msgspec.Struct, kw_only=True):
    trade_id: int
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    fee: str
    fee_fen: int
    at: dt.datetime


class OrderOut(msgspec.Struct, kw_only=True):
    id: int
    instrument_id: int
    account_id: int
    side: str
    kind: str
    price: str | None
    price_fen: int | None
    quantity: str
    quantity_base: int
    filled: str
    filled_base: int
    remaining_base: int
    cancelled_base: int
    status: str
    cancel_reason: str | None
    listing_id: int | None
    # What is held now for the rest of the order: units (sell) or yuan (buy).
    held: str
    held_base: int
    trade_date: dt.date
    journal_seq: int | None
    fills: list[FillOut]
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderPage(msgspec.Struct, kw_only=True):
    items: list[OrderOut]
    next_before_id: int | None


class LevelOut(msgspec.Struct, kw_only=True):
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    order_count: int


class ListingOut(msgspec.Struct, kw_only=True):
    id: int
    side: str
    price: str
    price_fen: int
    quantity: str
    quantity_base: int


class BookOut(msgspec.Struct, kw_only=True):
    instrument_id: int
    trade_date: dt.date
    mode: str
    status: str
    prev_close: str
    band_lower: str
    band_upper: str
    bids: list[LevelOut]
    asks: list[LevelOut]
    # Listed mode: the listings a taker may pick (those within each side's best five price levels).
    listings: list[ListingOut]
    journal_seq: int


class TradeOut(msgspec.Struct, kw_only=True):
    id: int
    instrument_id: int
    venue: str
    trade_date: dt.date
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    taker_side: str | None
    at: dt.datetime


class TradePage(msgspec.Struct, kw_only=True):
    items: list[TradeOut]
    next_before_id: int | None


class BarOut(msgspec.Struct, kw_only=True):
    venue: str
    open: str
    high: str
    low: str
    last: str
    open_fen: int
    high_fen: int
    low_fen: int
    last_fen: int
    volume: str
    volume_base: int
    turnover: str
    turnover_fen: int
    trade_count: int


class DayOut(msgspec.Struct, kw_only=True):
    trade_date: dt.date
    prev_close: str
    prev_close_fen: int
    # The official close (VWAP of the day's listed and continuous trades, else the previous close); for a day
    # not closed yet it is provisional.
    close: str
    close_fen: int
    closed: bool
    bars: list[BarOut]


class BlockTradeOut(msgspec.Struct, kw_only=True):
    id: int
    instrument_id: int
    buyer_organisation_id: int
    seller_organisation_id: int
    proposer_organisation_id: int
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    status: str
    trade_id: int | None
    trade_date: dt.date
    created_at: dt.datetime
    decided_at: dt.datetime | None


class BidOut(msgspec.Struct, kw_only=True):
    id: int
    auction_id: int
    organisation_id: int
    account_id: int
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    status: str
    allocated: str
    allocated_base: int
    paid_price: str | None
    created_at: dt.datetime


class AuctionOut(msgspec.Struct, kw_only=True):
    id: int
    instrument_id: int
    type: str
    status: str
    seller_organisation_id: int
    volume: str
    volume_base: int
    prev_close: str
    floor_price: str | None
    ceiling_price: str | None
    reserve_price: str | None
    bidder_cap_bps: int | None
    pricing: str
    clearing_price: str | None
    clearing_price_fen: int | None
    sold: str
    sold_base: int
    reason: str | None
    # Published with the result only: the seed fixed at creation and the tie order it gives.
    seed: int | None
    tie_order: list[int] | None
    bids: list[BidOut]
    created_at: dt.datetime
    cleared_at: dt.datetime | None


class FundAccountOut(msgspec.Struct, kw_only=True):
    organisation_id: int
    currency: str
    balance: str
    available: str
    held: str
    balance_fen: int
    available_fen: int
    held_fen: int


class FundMovementOut(msgspec.Struct, kw_only=True):
    id: int
    organisation_id: int
    kind: str
    amount: str
    amount_fen: int
    status: str
    reference: str
    bank_organisation_id: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None


class FundTransactionOut(msgspec.Struct, kw_only=True):
    """One posted movement of a fund account, signed: + into it, − out of it."""

    id: int
    code: str  # deposit, withdrawal, trade (a purchase's price and fee, or a sale's price less its fee)
    amount: str
    amount_fen: int
    ref: str | None  # what moved it: fund:<movement>, trade:<trade>, order:<order>, bid:<bid>, block:<block trade>
    at: dt.datetime


class FundTransactionPage(msgspec.Struct, kw_only=True):
    items: list[FundTransactionOut]
    next_before_id: int | None


class ClosedMarketOut(msgspec.Struct, kw_only=True):
    instrument_id: int
    close: str
    close_fen: int
    expired_orders: int
    expired_block_trades: int
    already_closed: bool


class CloseOut(msgspec.Struct, kw_only=True):
    trade_date: dt.date
    markets: list[ClosedMarketOut]
