"""The values the trading domain speaks in: sides, order kinds, result codes, trades and results.

The matcher answers every command with a `Result` value carrying a stable `Code` (exchange-core style:
outcomes are values, never exceptions). Codes are kebab-case strings because the API exposes them as
problem `type` suffixes; never rename one. Trades are immutable named tuples: they are created on the
hot path, compare by value in tests, and serialise as plain tuples.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderKind(StrEnum):
    """How an incoming order treats what it cannot fill at once.

    LIMIT rests its remainder; IOC cancels it; MARKET has no price, takes what the band allows and cancels
    the rest (it never rests, so it can never sit at an extreme price); FOK fills completely or not at all.
    """

    LIMIT = "limit"
    MARKET = "market"
    IOC = "ioc"
    FOK = "fok"


class BookMode(StrEnum):
    """CONTINUOUS matches price-time automatically; LISTED (挂牌协议) rests listings for takers to pick."""

    CONTINUOUS = "continuous"
    LISTED = "listed"


class SelfTradePrevention(StrEnum):
    """What happens when a taker would trade with a resting order of the same owner (enterprise)."""

    OFF = "off"
    CANCEL_TAKER = "cancel-taker"
    CANCEL_MAKER = "cancel-maker"
    CANCEL_BOTH = "cancel-both"


class Status(StrEnum):
    """The state of an order after a command: live on the book, or one of the terminal states."""

    RESTING = "resting"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class CancelReason(StrEnum):
    USER = "user"
    REDUCED_TO_ZERO = "reduced-to-zero"
    UNFILLED_RESIDUAL = "unfilled-residual"
    FOK_UNFILLABLE = "fok-unfillable"
    SELF_TRADE = "self-trade"


class Code(StrEnum):
    """Outcome of a command. Everything but OK is a rejection that changed nothing."""

    OK = "ok"
    DUPLICATE_ORDER_ID = "duplicate-order-id"
    INVALID_QUANTITY = "invalid-quantity"
    INVALID_PRICE = "invalid-price"
    OFF_TICK = "off-tick"
    OFF_LOT = "off-lot"
    QUANTITY_ABOVE_MAX = "quantity-above-max"
    OUTSIDE_BAND = "outside-band"
    MARKET_CLOSED = "market-closed"
    INVALID_TIME = "invalid-time"
    WRONG_MODE = "wrong-mode"
    WOULD_CROSS = "would-cross"
    UNKNOWN_ORDER = "unknown-order"
    ORDER_FILLED = "order-filled"
    ORDER_CANCELLED = "order-cancelled"
    NOT_OWNER = "not-owner"
    PICK_WRONG_SIDE = "pick-wrong-side"
    PICK_OUTSIDE_BEST_LEVELS = "pick-outside-best-levels"
    PICK_QUANTITY_ABOVE_LISTING = "pick-quantity-above-listing"
    SELF_TRADE = "self-trade"


MESSAGES: dict[Code, str] = {
    Code.OK: "Accepted.",
    Code.DUPLICATE_ORDER_ID: "This order id was used before; send a new id.",
    Code.INVALID_QUANTITY: "Quantity must be a positive integer of the base unit.",
    Code.INVALID_PRICE: "A limit order needs a positive price in fen; a market order must not carry a price.",
    Code.OFF_TICK: "The price must be a whole multiple of the tick (0.01 yuan by default).",
    Code.OFF_LOT: "The quantity must be a whole multiple of the lot step.",
    Code.QUANTITY_ABOVE_MAX: "The quantity exceeds this mode's maximum; use a block trade for large volumes.",
    Code.OUTSIDE_BAND: "The price lies outside today's price band around the previous close.",
    Code.MARKET_CLOSED: "The market is closed; orders are accepted during trading sessions on working days.",
    Code.INVALID_TIME: "The time must be timezone-aware.",
    Code.WRONG_MODE: "This command or order kind is not available in this book's trading mode.",
    Code.WOULD_CROSS: "This listing would cross the opposite side; pick the opposite listing instead.",
    Code.UNKNOWN_ORDER: "No order with this id exists in this book.",
    Code.ORDER_FILLED: "The order is already filled; there is nothing left to change.",
    Code.ORDER_CANCELLED: "The order is already cancelled.",
    Code.NOT_OWNER: "Only the owner of the order may change it.",
    Code.PICK_WRONG_SIDE: "A buyer picks a sell listing and a seller picks a buy listing.",
    Code.PICK_OUTSIDE_BEST_LEVELS: "Only listings within the best price levels of their side may be picked.",
    Code.PICK_QUANTITY_ABOVE_LISTING: "The pick asks for more than the listing has left.",
    Code.SELF_TRADE: "A participant cannot trade with its own listing.",
}


class Trade(NamedTuple):
    """One match. The price is always the maker's (resting order's) price.

    `seq` numbers the book's trades from 1 without gaps. `notional_fen` is the trade's amount and the fees are
    basis points of it, all whole fen rounded down (`money.notional_fen`, `money.fee_fen`): the price is per
    display unit and the quantity in base units, so the amount depends on the instrument's scale.
    """

    taker_order_id: int
    maker_order_id: int
    price_fen: int
    quantity: int
    taker_side: Side
    taker_owner: str
    maker_owner: str
    seq: int
    at: datetime
    notional_fen: int
    taker_fee_fen: int
    maker_fee_fen: int

    @property
    def buyer_order_id(self) -> int:
        return self.taker_order_id if self.taker_side is Side.BUY else self.maker_order_id

    @property
    def seller_order_id(self) -> int:
        return self.maker_order_id if self.taker_side is Side.BUY else self.taker_order_id

    @property
    def buyer_owner(self) -> str:
        return self.taker_owner if self.taker_side is Side.BUY else self.maker_owner

    @property
    def seller_owner(self) -> str:
        return self.maker_owner if self.taker_side is Side.BUY else self.taker_owner


class MakerCancel(NamedTuple):
    """A resting order removed by self-trade prevention (CANCEL_MAKER / CANCEL_BOTH): release its hold."""

    order_id: int
    side: Side
    owner: str
    quantity: int


class Result(NamedTuple):
    """The answer to one command.

    For a placement: `filled_quantity + resting_quantity + cancelled_quantity` equals the order quantity.
    For a cancel or reduce: `cancelled_quantity` is what was released and `resting_quantity` what is left.
    A rejection (`code != OK`) changed nothing.
    """

    code: Code
    order_id: int
    status: Status
    filled_quantity: int = 0
    resting_quantity: int = 0
    cancelled_quantity: int = 0
    trades: tuple[Trade, ...] = ()
    cancel_reason: CancelReason | None = None
    maker_cancels: tuple[MakerCancel, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.OK
