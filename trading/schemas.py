"""Request and response shapes of the trading API.

Prices are decimal strings in yuan with at most 2 decimals ("52.30") and quantities decimal strings in the
instrument's display unit (tCO2e, tce with 3 decimals, ...); both are parsed strictly at the edge
(`core.quantity`): no floats, exponents, signs or extra decimals, never rounded. Responses give each amount
twice: as the display string and as the integer base amount (`*_fen`, `*_base`). Requests forbid unknown
fields, so server-owned fields (status, filled, organisation) cannot be set by a client.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from core.schema import Amount, Id, Note, OptAmount, Req, about

Bps = Annotated[int, msgspec.Meta(ge=0, le=5000)]
FeeBps = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Reference = Annotated[str, msgspec.Meta(max_length=100)]


class CreateMarket(Req):
    """A market for an instrument: its mode, price band, fees and order limits."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "instrument_id": 1,
        "mode": "continuous",
        "reference_price": "52.30",
        "band_bps": 1000,
        "taker_fee_bps": 5,
    }

    instrument_id: Annotated[Id, about("The instrument (unit class) traded.")]
    mode: Annotated[
        Literal["listed", "continuous"],
        about("listed: listing and taking listings (挂牌/摘牌); continuous: a continuous order book."),
    ]
    reference_price: Annotated[
        Amount,
        about("The reference price the first day's band is built around, in yuan (the previous close of day one)."),
    ]
    band_bps: Annotated[Bps, about("The daily price band around the previous close, in basis points.")] = 1000
    block_band_bps: Annotated[Bps, about("The price band of block trades, in basis points.")] = 3000
    taker_fee_bps: Annotated[FeeBps, about("The fee of the order that takes liquidity, in basis points.")] = 0
    maker_fee_bps: Annotated[FeeBps, about("The fee of the order that was resting on the book, in basis points.")] = 0
    quantity_max: Annotated[
        OptAmount,
        about('Largest order on the book, in display units; the national listed agreement rule is "under 100,000".'),
    ] = None
    tick: Annotated[Amount, about("Price step in yuan (national rule: 0.01).")] = "0.01"
    lot: Annotated[OptAmount, about("Quantity step in display units (national rule: 1 base unit).")] = None
    stp: Annotated[
        Literal["cancel-taker", "cancel-maker", "cancel-both"],
        about("Self-trade prevention: which order is cancelled when two orders of one organisation would match."),
    ] = "cancel-taker"


class PlaceOrder(Req):
    """An order on a market's book."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "instrument_id": 1,
        "account_id": 11,
        "side": "buy",
        "quantity": "500",
        "kind": "limit",
        "price": "52.30",
    }

    instrument_id: Annotated[Id, about("The instrument (its market) the order is for.")]
    account_id: Annotated[Id, about("Your trading account: units of a sell and yuan of a buy are held on it.")]
    side: Annotated[Literal["buy", "sell"], about("buy or sell.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]
    kind: Annotated[
        Literal["limit", "market", "ioc", "fok"],
        about(
            "limit: rests on the book; market: at the best prices; ioc: fill what can, cancel the rest; "
            "fok: all or none."
        ),
    ] = "limit"
    price: Annotated[OptAmount, about("The limit price in yuan per unit (not with `market` or `listing_id`).")] = None
    listing_id: (
        Annotated[
            Id,
            about(
                "Listed mode (摘牌): take this listing of the other side at its price; `price` must then be omitted."
            ),
        ]
        | None
    ) = None


class ProposeBlockTrade(Req):
    """A block trade (大宗协议) proposed to another organisation, at a price within the block band."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "instrument_id": 1,
        "account_id": 11,
        "side": "sell",
        "counterparty_organisation_id": 5,
        "price": "50.00",
        "quantity": "100000",
    }

    instrument_id: Annotated[Id, about("The instrument traded.")]
    account_id: Annotated[Id, about("Your trading account.")]
    side: Annotated[Literal["buy", "sell"], about("Your side of the trade.")]
    counterparty_organisation_id: Annotated[Id, about("The organisation that may accept the trade.")]
    price: Annotated[Amount, about("Yuan per unit.")]
    quantity: Annotated[Amount, about("How much, at least the market's block minimum.")]


class AcceptBlockTrade(Req):
    """The counterparty's acceptance of a block trade."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"account_id": 12}

    account_id: Annotated[Id, about("Your trading account the trade settles on.")]


class CreateAuction(Req):
    """An auction: the issuing authority's primary auction (reserve price, per-bidder cap) or a holder's one-way
    auction (单向竞价, a floor and a ceiling within the band around the previous close)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "instrument_id": 1,
        "type": "primary",
        "volume": "200000",
        "pricing": "uniform",
        "reserve_price": "45.00",
        "bidder_cap_bps": 2500,
    }

    instrument_id: Annotated[Id, about("The instrument auctioned.")]
    type: Annotated[Literal["primary", "one-way"], about("primary: new units of the authority; one-way: a holder's.")]
    volume: Annotated[Amount, about("The units offered, held when the auction is created.")]
    account_id: Annotated[Id, about("The account the units come from; your allocation account if omitted.")] | None = (
        None
    )
    floor_price: Annotated[OptAmount, about("One-way auctions: the lowest price in yuan.")] = None
    ceiling_price: Annotated[OptAmount, about("One-way auctions: the highest price in yuan.")] = None
    pricing: Annotated[
        Literal["uniform", "pay-as-bid"], about("uniform: every winner pays the clearing price; pay-as-bid: its bid.")
    ] = "uniform"
    reserve_price: Annotated[OptAmount, about("Primary auctions: no unit sells below this price in yuan.")] = None
    bidder_cap_bps: (
        Annotated[
            int, msgspec.Meta(ge=1, le=10_000), about("Primary auctions: the most one bidder may win, in basis points.")
        ]
        | None
    ) = 2500


class SubmitBid(Req):
    """A sealed bid; price × quantity is held in your fund account until the auction clears."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"account_id": 11, "price": "48.50", "quantity": "10000"}

    account_id: Annotated[Id, about("Your trading account the units are delivered to.")]
    price: Annotated[Amount, about("Yuan per unit.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]


class FundRequest(Req):
    """A deposit or withdrawal of yuan, decided by the settlement bank."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"amount": "100000.00", "reference": "BOC-20260302-0001"}

    amount: Annotated[Amount, about("Yuan, at most two decimals.")]
    reference: Annotated[Reference, about("Your reference for the bank (a transfer number).")] = ""
    bank_organisation_id: (
        Annotated[
            Id,
            about(
                "The settlement bank that holds the money and decides this movement (an organisation of kind bank). It "
                "may be left out while the installation has exactly one settlement bank."
            ),
        ]
        | None
    ) = None


class FundDecision(Req):
    """The settlement bank's decision on a deposit or withdrawal: it must be said, never assumed."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"decision": "confirm", "reference": "BOC-20260302-0001"}

    decision: Annotated[Literal["confirm", "reject"], about("confirm or reject: there is no default.")]
    reference: Annotated[Reference, about("The bank's own reference of the movement.")] = ""


class CloseDay(Req):
    """Closing before today's sessions end needs `early_close: true` and a `reason` (audited)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"trade_date": "2026-03-02"}

    trade_date: Annotated[dt.date, about("The trading day to close; today if omitted.")] | None = None
    early_close: Annotated[bool, about("Close before the sessions end (needs `reason`).")] = False
    reason: Annotated[Note, about("Why the day closes early; required with `early_close`.")] = ""


class MarketOut(msgspec.Struct, kw_only=True):
    """A market: its mode, status, price band of the day, steps, limits and fees."""

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
    """One fill of an order."""

    trade_id: int
    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    fee: str
    fee_fen: int
    at: dt.datetime


class OrderOut(msgspec.Struct, kw_only=True):
    """An order with its fills and what is held for the rest of it."""

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
    """A page of orders, newest first; `next_before_id` fetches the next page (null on the last)."""

    items: list[OrderOut]
    next_before_id: int | None


class LevelOut(msgspec.Struct, kw_only=True):
    """One price level of the book."""

    price: str
    price_fen: int
    quantity: str
    quantity_base: int
    order_count: int


class ListingOut(msgspec.Struct, kw_only=True):
    """A listing of listed mode (挂牌), taken by its id."""

    id: int
    side: str
    price: str
    price_fen: int
    quantity: str
    quantity_base: int


class BookOut(msgspec.Struct, kw_only=True):
    """A market's order book: levels (continuous mode) or listings (listed mode)."""

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
    """One trade."""

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
    """A page of trades, newest first; `next_before_id` fetches the next page (null on the last)."""

    items: list[TradeOut]
    next_before_id: int | None


class BarOut(msgspec.Struct, kw_only=True):
    """One day's open, high, low, close and volume."""

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
    """One trading day's status."""

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
    """A block trade and its status."""

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
    """A bid of an auction (its allocation once cleared)."""

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
    """An auction, its bids and its result once cleared."""

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
    """A fund account: balance and what is held for open orders and bids."""

    organisation_id: int
    currency: str
    balance: str
    available: str
    held: str
    balance_fen: int
    available_fen: int
    held_fen: int


class FundMovementOut(msgspec.Struct, kw_only=True):
    """A deposit or withdrawal and the bank's decision."""

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
    """A page of the fund account's posted movements, newest first; `next_before_id` asks for the next page."""

    items: list[FundTransactionOut]
    next_before_id: int | None


class ClosedMarketOut(msgspec.Struct, kw_only=True):
    """One market closed for the day."""

    instrument_id: int
    close: str
    close_fen: int
    expired_orders: int
    expired_block_trades: int
    already_closed: bool


class CloseOut(msgspec.Struct, kw_only=True):
    """The close of a trading day: every market closed and the day's prices."""

    trade_date: dt.date
    markets: list[ClosedMarketOut]
