"""Market data: daily bars per trading mode, the closing price, the monthly average price, and depth.

Definitions (national carbon market rule pack):
- A daily bar per venue (listed agreement, continuous, block, auctions): open = first trade of the day,
  high, low, last, volume (base units), turnover (fen: the sum of the trades' amounts, `money.notional_fen`)
  and trade count, in the order the trades happened.
- The closing price of a day is the volume-weighted average price of that day's on-book trades (listed
  agreement 挂牌协议, and continuous matching for schemes that use it): Σ(price × quantity) / Σ quantity, with
  prices per display unit, rounded to the nearest tick with exact halves rounded UP. (Σ price × quantity is not
  the turnover: for a scaled instrument it is the turnover × 10**scale, unrounded, and the ratio is a price.)
  With no on-book trade the close is the previous close. Block trades and auctions never set the close.
- The monthly average price, used by compliance to price shortfall fines (国务院令第775号 Art. 24: fine =
  shortfall × average price of the month before the deadline × k), is the volume-weighted average of all
  on-book trades whose Asia/Shanghai trade date lies in that calendar month: Σ(price × quantity) / Σ quantity,
  rounded half up to the tick. It is None for a month without on-book trades; the caller then decides the
  fallback (for instance the latest close) and records it.
- Depth: the best five price levels per side with their total quantity and order count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from trading.domain.bands import round_half_up_to_tick
from trading.domain.book import Book, Depth
from trading.domain.model import Trade
from trading.domain.sessions import business_date


class Venue(StrEnum):
    LISTED = "listed"
    CONTINUOUS = "continuous"
    BLOCK = "block"
    ONE_WAY_AUCTION = "one-way-auction"
    PRIMARY_AUCTION = "primary-auction"


CLOSE_SETTING_VENUES: tuple[Venue, ...] = (Venue.LISTED, Venue.CONTINUOUS)


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One executed trade as market data sees it."""

    venue: Venue
    trade_date: date
    price_fen: int
    quantity: int
    notional_fen: int


def print_from_trade(trade: Trade, venue: Venue) -> TradePrint:
    """A book trade as a print; its trade date is the Asia/Shanghai date of the trade's instant."""
    return TradePrint(venue, business_date(trade.at), trade.price_fen, trade.quantity, trade.notional_fen)


@dataclass(frozen=True, slots=True)
class Bar:
    venue: Venue
    trade_date: date
    open_fen: int
    high_fen: int
    low_fen: int
    last_fen: int
    volume: int
    turnover_fen: int
    trade_count: int


@dataclass(frozen=True, slots=True)
class DailySummary:
    """The day's official close and one bar per venue that traded (in `Venue` declaration order)."""

    trade_date: date
    prev_close_fen: int
    close_fen: int
    bars: tuple[Bar, ...]

    def bar(self, venue: Venue) -> Bar | None:
        return next((bar for bar in self.bars if bar.venue is venue), None)


def _bar(venue: Venue, trade_date: date, prints: list[TradePrint]) -> Bar:
    prices = [p.price_fen for p in prints]
    return Bar(
        venue=venue,
        trade_date=trade_date,
        open_fen=prices[0],
        high_fen=max(prices),
        low_fen=min(prices),
        last_fen=prices[-1],
        volume=sum(p.quantity for p in prints),
        turnover_fen=sum(p.notional_fen for p in prints),
        trade_count=len(prints),
    )


def volume_weighted_price_fen(prints: Iterable[TradePrint], tick_fen: int = 1) -> int | None:
    """Σ(price × quantity) / Σ quantity rounded half up to the tick; None without volume."""
    price_quantity = 0
    volume = 0
    for p in prints:
        price_quantity += p.price_fen * p.quantity
        volume += p.quantity
    if volume == 0:
        return None
    return round_half_up_to_tick(price_quantity, volume, tick_fen)


def closing_price_fen(prints: Iterable[TradePrint], prev_close_fen: int, tick_fen: int = 1) -> int:
    """The close: VWAP of the on-book prints given (one day's), else the previous close."""
    vwap = volume_weighted_price_fen((p for p in prints if p.venue in CLOSE_SETTING_VENUES), tick_fen)
    return prev_close_fen if vwap is None else vwap


def daily_summary(
    prints: Iterable[TradePrint], trade_date: date, prev_close_fen: int, tick_fen: int = 1
) -> DailySummary:
    """Bars and close of `trade_date` from prints in execution order (prints of other days are ignored)."""
    of_day = [p for p in prints if p.trade_date == trade_date]
    bars = tuple(
        _bar(venue, trade_date, venue_prints)
        for venue in Venue
        if (venue_prints := [p for p in of_day if p.venue is venue])
    )
    return DailySummary(trade_date, prev_close_fen, closing_price_fen(of_day, prev_close_fen, tick_fen), bars)


def monthly_average_price_fen(prints: Iterable[TradePrint], year: int, month: int, tick_fen: int = 1) -> int | None:
    """The volume-weighted average price of the month's on-book prints (see the module docstring)."""
    return volume_weighted_price_fen(
        (
            p
            for p in prints
            if p.venue in CLOSE_SETTING_VENUES and p.trade_date.year == year and p.trade_date.month == month
        ),
        tick_fen,
    )


def depth(book: Book, levels: int = 5) -> Depth:
    """The best `levels` (default 5) price levels of each side of the book, best first."""
    return book.depth(levels)
