"""Price bands, tick and lot rules: the integer price arithmetic every trading mode shares (amounts: `money`).

A band is a percentage (in basis points) around the previous close: ±10% for listed agreement orders and
one-way auctions, ±30% for block trades (national carbon market rules). The exact edges are rarely whole
ticks, so they are rounded INWARD: the lower edge up to the next tick, the upper edge down, so that no price
inside the published band is ever outside the legal percentage. Ticks count from zero (prices are whole
multiples of the tick). Everything is integer arithmetic; no float touches a price.
"""

from __future__ import annotations

from typing import NamedTuple

BPS_PER_UNIT = 10_000


class Band(NamedTuple):
    """Inclusive price limits in fen."""

    lower_fen: int
    upper_fen: int

    def contains(self, price_fen: int) -> bool:
        return self.lower_fen <= price_fen <= self.upper_fen


def price_band(prev_close_fen: int, band_bps: int, tick_fen: int = 1) -> Band:
    """The band `prev_close × (1 ± band_bps / 10,000)`, edges rounded inward to the tick.

    The lower edge never drops below one tick, because a price must stay positive.
    Example: previous close 5,555 fen, ±10% → exact 4,999.5 .. 6,110.5 → band 5,000 .. 6,110.
    """
    if prev_close_fen <= 0:
        raise ValueError("prev_close_fen must be positive")
    if band_bps < 0:
        raise ValueError("band_bps must not be negative")
    if tick_fen <= 0:
        raise ValueError("tick_fen must be positive")
    denominator = BPS_PER_UNIT * tick_fen
    lower_numerator = prev_close_fen * (BPS_PER_UNIT - band_bps)
    # Ceiling division for the lower edge, floor division for the upper: both move toward the close.
    lower_fen = -(-lower_numerator // denominator) * tick_fen
    upper_fen = (prev_close_fen * (BPS_PER_UNIT + band_bps)) // denominator * tick_fen
    return Band(max(lower_fen, tick_fen), upper_fen)


def is_on_tick(price_fen: int, tick_fen: int) -> bool:
    return price_fen % tick_fen == 0


def is_on_lot(quantity: int, lot_quantity: int) -> bool:
    return quantity % lot_quantity == 0


def round_half_up_to_tick(numerator: int, denominator: int, tick_fen: int) -> int:
    """`numerator / denominator` in fen, rounded to the nearest tick; exact halves round up.

    Used for volume-weighted prices (turnover / volume). Both arguments must be positive.
    """
    if denominator <= 0 or numerator < 0:
        raise ValueError("denominator must be positive and numerator non-negative")
    scaled = denominator * tick_fen
    return (2 * numerator + scaled) // (2 * scaled) * tick_fen
