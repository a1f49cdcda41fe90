"""Market data: bars per venue, the volume-weighted close, the monthly average price, and depth."""

from __future__ import annotations

from datetime import UTC, date, datetime

from trading.domain.book import Book, BookConfig, LevelView
from trading.domain.marketdata import (
    Bar,
    TradePrint,
    Venue,
    closing_price_fen,
    daily_summary,
    depth,
    monthly_average_price_fen,
    print_from_trade,
)
from trading.domain.model import OrderKind, Side

DAY = date(2025, 3, 3)
LISTED, BLOCK, CONTINUOUS = Venue.LISTED, Venue.BLOCK, Venue.CONTINUOUS


def test_the_close_is_the_vwap_of_listed_trades_rounded_half_up_and_ignores_block_trades() -> None:
    prints = [
        TradePrint(LISTED, DAY, 10_000, 100, 10_000 * 100),
        TradePrint(BLOCK, DAY, 5_000, 1_000_000, 5_000 * 1_000_000),
        TradePrint(LISTED, DAY, 10_001, 100, 10_001 * 100),
    ]
    # (1,000,000 + 1,000,100) / 200 = 10,000.5 fen: an exact half rounds up to 10,001.
    summary = daily_summary(prints, DAY, prev_close_fen=9_000)
    assert summary.close_fen == 10_001
    assert summary.bar(LISTED) == Bar(LISTED, DAY, 10_000, 10_001, 10_000, 10_001, 200, 2_000_100, 2)
    assert summary.bar(BLOCK) == Bar(BLOCK, DAY, 5_000, 5_000, 5_000, 5_000, 1_000_000, 5_000_000_000, 1)
    assert summary.bar(CONTINUOUS) is None


def test_the_close_rounds_to_the_tick() -> None:
    prints = [TradePrint(LISTED, DAY, 10_010, 1, 10_010 * 1), TradePrint(LISTED, DAY, 10_020, 2, 10_020 * 2)]
    # VWAP 10,016.67 fen; to a 10-fen tick 10,020.
    assert closing_price_fen(prints, prev_close_fen=9_000, tick_fen=10) == 10_020
    assert closing_price_fen(prints, prev_close_fen=9_000) == 10_017


def test_without_listed_trades_the_close_is_the_previous_close() -> None:
    prints = [
        TradePrint(BLOCK, DAY, 12_000, 500_000, 12_000 * 500_000),
        TradePrint(Venue.ONE_WAY_AUCTION, DAY, 12_000, 100_000, 12_000 * 100_000),
    ]
    assert daily_summary(prints, DAY, prev_close_fen=9_876).close_fen == 9_876


def test_continuous_trades_set_the_close_for_schemes_that_use_the_continuous_mode() -> None:
    assert closing_price_fen([TradePrint(CONTINUOUS, DAY, 8_000, 10, 8_000 * 10)], prev_close_fen=9_000) == 8_000


def test_the_daily_summary_keeps_only_the_days_prints() -> None:
    prints = [TradePrint(LISTED, date(2025, 3, 2), 1, 1, 1 * 1), TradePrint(LISTED, DAY, 10_000, 1, 10_000 * 1)]
    summary = daily_summary(prints, DAY, prev_close_fen=9_000)
    assert summary.bar(LISTED) is not None and summary.bar(LISTED).volume == 1  # type: ignore[union-attr]


def test_the_monthly_average_is_volume_weighted_over_the_months_listed_trades() -> None:
    prints = [
        TradePrint(LISTED, date(2025, 11, 3), 9_000, 300, 9_000 * 300),
        TradePrint(LISTED, date(2025, 11, 28), 10_000, 100, 10_000 * 100),
        TradePrint(BLOCK, date(2025, 11, 10), 1_000, 1_000_000, 1_000 * 1_000_000),
        TradePrint(LISTED, date(2025, 12, 1), 50_000, 1_000, 50_000 * 1_000),
    ]
    # (2,700,000 + 1,000,000) / 400 = 9,250 fen.
    assert monthly_average_price_fen(prints, 2025, 11) == 9_250
    assert monthly_average_price_fen(prints, 2025, 10) is None


def test_a_trade_prints_on_its_shanghai_date() -> None:
    book = Book(BookConfig.unchecked())
    late_utc = datetime(2025, 3, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 April in Shanghai
    book.place(1, Side.SELL, OrderKind.LIMIT, 100, 5, owner="S", now=late_utc)
    trade = book.place(2, Side.BUY, OrderKind.LIMIT, 100, 5, owner="B", now=late_utc).trades[0]
    assert print_from_trade(trade, LISTED) == TradePrint(LISTED, date(2025, 4, 1), 100, 5, 100 * 5)


def test_depth_shows_the_best_five_levels_per_side() -> None:
    book = Book(BookConfig.unchecked())
    now = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
    for order_id, price in enumerate(range(90, 97), start=1):
        book.place(order_id, Side.BUY, OrderKind.LIMIT, price, 10, owner="B", now=now)
    book.place(50, Side.BUY, OrderKind.LIMIT, 96, 5, owner="B", now=now)
    book.place(60, Side.SELL, OrderKind.LIMIT, 100, 7, owner="S", now=now)
    shown = depth(book)
    assert [level.price_fen for level in shown.bids] == [96, 95, 94, 93, 92]
    assert shown.bids[0] == LevelView(96, 15, 2)
    assert shown.asks == (LevelView(100, 7, 1),)
