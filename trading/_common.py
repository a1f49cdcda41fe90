"""What the trading use cases share: the national market's size limits, the problem each rejection code of the
matcher answers (with today's band in the message when a price is outside it), the book's static entry checks,
and the formatting of base-unit quantities and fen amounts for the answers.
"""

from __future__ import annotations

from typing import Any

from core import figures
from core.errors import AppError
from core.identity import Role
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from trading.domain.bands import is_on_lot, is_on_tick, price_band
from trading.domain.book import BookConfig
from trading.domain.marketdata import Venue
from trading.domain.model import MESSAGES, BookMode, Code, OrderKind
from trading.models import BookDay

SYSTEM_ACTOR = "system:scheduler"
STALE_RETRIES = 3
# National carbon market rules, in display units (t, tce, certificates): listed-agreement orders under 100,000,
# block trades and one-way auctions from 100,000. A market stores them in base units (× 10**scale).
DEFAULT_QUANTITY_MAX_DISPLAY = 99_999
BLOCK_QUANTITY_MIN_DISPLAY = 100_000
TRADER_ROLES = (Role.EMITTER, Role.MEMBER)
# Problem slug and field for each rejection code of the matcher.
CODE_PROBLEMS: dict[Code, tuple[str, str | None]] = {
    Code.DUPLICATE_ORDER_ID: ("duplicate", None),
    Code.INVALID_QUANTITY: ("quantity-invalid", "quantity"),
    Code.INVALID_PRICE: ("invalid-price", "price"),
    Code.OFF_TICK: ("off-tick", "price"),
    Code.OFF_LOT: ("off-lot", "quantity"),
    Code.QUANTITY_ABOVE_MAX: ("quantity-above-max", "quantity"),
    Code.OUTSIDE_BAND: ("outside-band", "price"),
    Code.MARKET_CLOSED: ("market-closed", None),
    Code.INVALID_TIME: ("invalid-input", "at"),
    Code.WRONG_MODE: ("wrong-mode", "kind"),
    Code.WOULD_CROSS: ("would-cross", "price"),
    Code.UNKNOWN_ORDER: ("not-found", "order_id"),
    Code.ORDER_FILLED: ("order-filled", None),
    Code.ORDER_CANCELLED: ("order-cancelled", None),
    Code.NOT_OWNER: ("not-found", "order_id"),
    Code.PICK_WRONG_SIDE: ("pick-wrong-side", "side"),
    Code.PICK_OUTSIDE_BEST_LEVELS: ("pick-outside-best-levels", "listing_id"),
    Code.PICK_QUANTITY_ABOVE_LISTING: ("pick-quantity-above-listing", "quantity"),
    Code.SELF_TRADE: ("self-trade", "listing_id"),
}
VENUE_OF_MODE = {BookMode.LISTED.value: Venue.LISTED.value, BookMode.CONTINUOUS.value: Venue.CONTINUOUS.value}


def kind_scale(kind: str) -> int:
    return KIND_RULES[Kind(kind)].scale


def qty(base: int, kind: str) -> str:
    """A quantity of the kind's base units in the machine form of the answers (`core.figures`)."""
    return figures.quantity_plain(base, kind_scale(kind))


def qty_text(base: int, kind: str) -> str:
    """The same in the human form, for messages."""
    return figures.quantity(base, kind_scale(kind))


def maybe_yuan(fen: int | None) -> str | None:
    """An optional amount (a floor, a clearing price not yet known) in the machine form, or None."""
    return None if fen is None else figures.yuan_plain(fen)


def book_error(code: Code, row: BookDay | None = None, *, pick: bool = False) -> AppError:
    slug, field_name = CODE_PROBLEMS[code]
    if pick and code in (Code.UNKNOWN_ORDER, Code.ORDER_FILLED, Code.ORDER_CANCELLED, Code.NOT_OWNER):
        field_name = "listing_id"
    detail = MESSAGES[code]
    extra: dict[str, Any] = {}
    if code is Code.OUTSIDE_BAND and row is not None:
        band = price_band(row.prev_close_fen, row.band_bps, row.tick_fen)
        detail = (
            f"Today's band is {figures.yuan(band.lower_fen)} to {figures.yuan(band.upper_fen)} yuan "
            f"(±{figures.percent(row.band_bps)} of the previous close {figures.yuan(row.prev_close_fen)} yuan)."
        )
        extra = {"band_lower": figures.yuan_plain(band.lower_fen), "band_upper": figures.yuan_plain(band.upper_fen)}
    if slug == "not-found":
        return AppError("not-found", "No order with this id is visible to you.", field=field_name)
    return AppError(slug, detail, field=field_name, extra=extra)


def entry_check(
    config: BookConfig, kind: OrderKind, price_fen: int | None, quantity: int, *, pick: bool
) -> Code | None:
    """The book's static entry checks (mode, tick, band, lot, maximum), run before anything is held.

    The book runs them again and stays the authority; running them first makes a malformed order a 422 even when
    the caller could not have covered it anyway (which would otherwise answer 409 from the hold).
    """
    listed = config.mode is BookMode.LISTED
    if not pick:
        if listed and kind is not OrderKind.LIMIT:
            return Code.WRONG_MODE
        if price_fen is not None:
            if config.check_tick and not is_on_tick(price_fen, config.tick_fen):
                return Code.OFF_TICK
            band = config.band
            if band is not None and not band.contains(price_fen):
                return Code.OUTSIDE_BAND
    if config.check_lot and not is_on_lot(quantity, config.lot_quantity):
        return Code.OFF_LOT
    if config.quantity_max is not None and quantity > config.quantity_max:
        return Code.QUANTITY_ABOVE_MAX
    return None


def raise_failures(failures: list[checks.Failure]) -> None:
    if failures:
        slug, field_name, message = failures[0]
        raise AppError(slug, message, field=field_name)
