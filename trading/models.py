"""Tables of the trading context: markets, one order book per instrument and trading day with its command
journal, orders, trades, block trades, auctions with their bids, and fund movements confirmed by the bank.

Money is integer fen and quantities integer base units throughout (BigInteger columns). Holds on units and
funds are ledger transfers (`core.ledger`); a row here only points at its current hold (`hold_transfer_id`)
and records the amount that hold must have (`held_amount`), so reconciliation can compare the two.

The journal's `(book_id, seq)` is unique: it is the sequencer's guarantee that one book has one ordered
history, and the reason a second process writing the same book fails instead of interleaving.
"""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.prepared import plain_row


class Market(SQLModel, table=True):
    """Which instrument trades in which mode, with the rules of its books (a row per instrument)."""

    __tablename__ = "trading_market"
    __table_args__ = (
        CheckConstraint("prev_close_fen > 0", name="ck_trading_market_close"),
        CheckConstraint("tick_fen > 0 AND lot_quantity > 0", name="ck_trading_market_tick_lot"),
    )
    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(foreign_key="registry_instrument.id", unique=True)
    # Copied from the instrument at creation, so market data can be grouped by kind without reading registry tables.
    kind: str = Field(max_length=16, index=True)
    mode: str = Field(max_length=16)
    status: str = Field(max_length=16, default="open")
    prev_close_fen: int = Field(sa_type=BigInteger)
    last_close_date: dt.date | None = Field(default=None)
    band_bps: int = Field(default=1000)
    block_band_bps: int = Field(default=3000)
    tick_fen: int = Field(default=1)
    # In base units, set from display units at creation (`trading.markets.create_market`): no default here can know
    # the instrument's scale.
    lot_quantity: int = Field(sa_type=BigInteger)
    quantity_max: int | None = Field(sa_type=BigInteger)
    block_quantity_min: int = Field(sa_type=BigInteger)
    taker_fee_bps: int = Field(default=0)
    maker_fee_bps: int = Field(default=0)
    stp: str = Field(max_length=16, default="cancel-taker")
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class BookDay(SQLModel, table=True):
    """One order book: one market on one trading day, with the configuration it was opened with.

    The configuration is frozen here so that a replay after a restart builds the very same book, and the
    close of the day is stored when the day is closed (the next day's band is built around it).
    """

    __tablename__ = "trading_book"
    __table_args__ = (UniqueConstraint("market_id", "trade_date", name="uq_trading_book_market_date"),)
    id: int | None = Field(default=None, primary_key=True)
    market_id: int = Field(foreign_key="trading_market.id")
    trade_date: dt.date
    mode: str = Field(max_length=16)
    prev_close_fen: int = Field(sa_type=BigInteger)
    band_bps: int
    tick_fen: int
    # The instrument's quantity scale (prices per display unit, quantities in base units): amounts depend on it.
    scale: int = Field(default=0)
    lot_quantity: int = Field(sa_type=BigInteger)
    quantity_max: int | None = Field(default=None, sa_type=BigInteger)
    taker_fee_bps: int
    maker_fee_bps: int
    stp: str = Field(max_length=16)
    status: str = Field(max_length=16, default="open")
    close_fen: int | None = Field(default=None, sa_type=BigInteger)
    closed_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class JournalEntry(SQLModel, table=True):
    """One accepted command of one book, in sequence. Replaying a book's entries in `seq` order rebuilds it."""

    __tablename__ = "trading_journal"
    __table_args__ = (UniqueConstraint("book_id", "seq", name="uq_trading_journal_book_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    book_id: int = Field(foreign_key="trading_book.id")
    seq: int = Field(sa_type=BigInteger)
    command: str = Field(sa_type=Text)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class Order(SQLModel, table=True):
    """An order (or a pick, 摘牌) as the participant sees it. Its id is the order id inside the book."""

    __tablename__ = "trading_order"
    __table_args__ = (
        Index("ix_trading_order_org", "organisation_id", "id"),
        Index("ix_trading_order_book_status", "book_id", "status"),
        CheckConstraint("filled_quantity + cancelled_quantity <= quantity", name="ck_trading_order_quantities"),
    )
    id: int | None = Field(default=None, primary_key=True)
    book_id: int = Field(foreign_key="trading_book.id")
    market_id: int = Field(foreign_key="trading_market.id")
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    organisation_id: int = Field(foreign_key="organisation.id")
    account_id: int = Field(foreign_key="registry_account.id")
    principal_id: int = Field(sa_type=BigInteger)
    side: str = Field(max_length=4)
    kind: str = Field(max_length=8)
    price_fen: int | None = Field(default=None, sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)
    filled_quantity: int = Field(default=0, sa_type=BigInteger)
    cancelled_quantity: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=16)
    cancel_reason: str | None = Field(default=None, max_length=24)
    listing_id: int | None = Field(default=None, sa_type=BigInteger)
    # A buy order holds `money.buy_hold_fen(hold_price_fen, remaining, scale, hold_fee_bps)`: the limit (or the
    # band edge for a market order, the listing's price for a pick) and the larger of the book's two fees.
    hold_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    hold_fee_bps: int = Field(default=0)
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    held_amount: int = Field(default=0, sa_type=BigInteger)
    hold_count: int = Field(default=0)
    journal_seq: int | None = Field(default=None, sa_type=BigInteger)
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    trade_date: dt.date
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    updated_at: dt.datetime = Field(sa_type=DateTimeUTC)


class Trade(SQLModel, table=True):
    """One executed trade of any venue (listed, continuous, block, one-way or primary auction), settled DVP."""

    __tablename__ = "trading_trade"
    __table_args__ = (
        UniqueConstraint("book_id", "book_seq", name="uq_trading_trade_book_seq"),
        Index("ix_trading_trade_instrument_date", "instrument_id", "trade_date", "id"),
        Index("ix_trading_trade_buyer", "buyer_account_id", "instrument_id", "trade_date"),
        Index("ix_trading_trade_market_date", "market_id", "trade_date", "venue"),
    )
    id: int | None = Field(default=None, primary_key=True)
    market_id: int = Field(foreign_key="trading_market.id")
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    venue: str = Field(max_length=16)
    trade_date: dt.date
    book_id: int | None = Field(default=None, foreign_key="trading_book.id")
    book_seq: int | None = Field(default=None, sa_type=BigInteger)
    price_fen: int = Field(sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)
    # What the buyer paid the seller, before fees: `money.notional_fen(price_fen, quantity, scale)`.
    notional_fen: int = Field(sa_type=BigInteger)
    buyer_organisation_id: int = Field(foreign_key="organisation.id")
    seller_organisation_id: int = Field(foreign_key="organisation.id")
    buyer_account_id: int = Field(foreign_key="registry_account.id")
    seller_account_id: int = Field(foreign_key="registry_account.id")
    buy_order_id: int | None = Field(default=None, sa_type=BigInteger)
    sell_order_id: int | None = Field(default=None, sa_type=BigInteger)
    taker_side: str | None = Field(default=None, max_length=4)
    buyer_fee_fen: int = Field(default=0, sa_type=BigInteger)
    seller_fee_fen: int = Field(default=0, sa_type=BigInteger)
    block_trade_id: int | None = Field(default=None, sa_type=BigInteger)
    auction_id: int | None = Field(default=None, sa_type=BigInteger)
    at: dt.datetime = Field(sa_type=DateTimeUTC)


class BlockTrade(SQLModel, table=True):
    """A block trade (大宗协议): proposed by one member (its side held at once), accepted by the other."""

    __tablename__ = "trading_block_trade"
    id: int | None = Field(default=None, primary_key=True)
    market_id: int = Field(foreign_key="trading_market.id")
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    buyer_organisation_id: int = Field(foreign_key="organisation.id")
    seller_organisation_id: int = Field(foreign_key="organisation.id")
    buyer_account_id: int | None = Field(default=None, foreign_key="registry_account.id")
    seller_account_id: int | None = Field(default=None, foreign_key="registry_account.id")
    proposer_organisation_id: int = Field(foreign_key="organisation.id")
    price_fen: int = Field(sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)
    proposed_by: int = Field(sa_type=BigInteger)
    decided_by: int | None = Field(default=None, sa_type=BigInteger)
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    held_amount: int = Field(default=0, sa_type=BigInteger)
    trade_id: int | None = Field(default=None, foreign_key="trading_trade.id")
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    trade_date: dt.date
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    decided_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class Auction(SQLModel, table=True):
    """A one-way auction (单向竞价) or a primary allowance auction; the seller's units are held while it is open.

    `seed` is drawn and stored at creation, before any bid, and fixes the random tie order of the primary
    auction; it is published only with the result.
    """

    __tablename__ = "trading_auction"
    id: int | None = Field(default=None, primary_key=True)
    market_id: int = Field(foreign_key="trading_market.id")
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    type: str = Field(max_length=16)
    seller_organisation_id: int = Field(foreign_key="organisation.id")
    seller_account_id: int = Field(foreign_key="registry_account.id")
    volume: int = Field(sa_type=BigInteger)
    prev_close_fen: int = Field(sa_type=BigInteger)
    floor_fen: int | None = Field(default=None, sa_type=BigInteger)
    ceiling_fen: int | None = Field(default=None, sa_type=BigInteger)
    reserve_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    bidder_cap_bps: int | None = Field(default=None)
    pricing: str = Field(max_length=16, default="uniform")
    seed: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16, default="open")
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    held_amount: int = Field(default=0, sa_type=BigInteger)
    clearing_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    sold_quantity: int = Field(default=0, sa_type=BigInteger)
    reason: str | None = Field(default=None, max_length=500)
    tie_order: str | None = Field(default=None, sa_type=Text)
    created_by: int = Field(sa_type=BigInteger)
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    cleared_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class Bid(SQLModel, table=True):
    """A sealed bid; the bidder's funds (price × quantity) are held until the auction clears or is cancelled."""

    __tablename__ = "trading_auction_bid"
    __table_args__ = (Index("ix_trading_bid_auction", "auction_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    auction_id: int = Field(foreign_key="trading_auction.id")
    organisation_id: int = Field(foreign_key="organisation.id")
    account_id: int = Field(foreign_key="registry_account.id")
    principal_id: int = Field(sa_type=BigInteger)
    price_fen: int = Field(sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16, default="open")
    allocated_quantity: int = Field(default=0, sa_type=BigInteger)
    paid_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    held_amount: int = Field(default=0, sa_type=BigInteger)
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class FundMovement(SQLModel, table=True):
    """A deposit into or withdrawal from a fund account, requested by its owner, decided by the settlement bank.

    A deposit moves nothing until the bank confirms it; a withdrawal holds the amount at once and posts it on
    confirmation (or releases it on rejection).
    """

    __tablename__ = "trading_fund_movement"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="ck_trading_fund_amount"),
        CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="ck_trading_fund_two_parties"),
        Index("ix_trading_fund_org", "organisation_id", "id"),
        Index("ix_trading_fund_status", "status", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    kind: str = Field(max_length=16)
    amount_fen: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)
    reference: str = Field(default="", max_length=100)
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    held_amount: int = Field(default=0, sa_type=BigInteger)
    transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    requested_by: int = Field(sa_type=BigInteger)
    decided_by: int | None = Field(default=None, sa_type=BigInteger)
    bank_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    decided_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


# The order path's stand-ins for an `Order` and a `Trade` (`core.prepared.plain_row`): the same fields on plain
# objects, written with prepared statements (`trading.orders`, `trading.settlement`), never added to a session.
OrderRow = plain_row(Order.__table__, "OrderRow")  # type: ignore[attr-defined]
TradeRow = plain_row(Trade.__table__, "TradeRow")  # type: ignore[attr-defined]
BookDayRow = plain_row(BookDay.__table__, "BookDayRow")  # type: ignore[attr-defined]
