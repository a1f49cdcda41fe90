"""Fixed tests for the order book: the classic matching-engine bugs, each pinned by one scenario."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trading.domain.book import Book, BookConfig, LevelView
from trading.domain.model import (
    BookMode,
    CancelReason,
    Code,
    MakerCancel,
    OrderKind,
    SelfTradePrevention,
    Side,
    Status,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, IOC, FOK = OrderKind.LIMIT, OrderKind.MARKET, OrderKind.IOC, OrderKind.FOK
# Monday 3 March 2025, 10:00 in Shanghai.
OPEN = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


def plain() -> Book:
    return Book(BookConfig.unchecked())


def rest(book: Book, order_id: int, side: Side, price_fen: int, quantity: int, owner: str = "M") -> None:
    result = book.place(order_id, side, LIMIT, price_fen, quantity, owner=owner, now=OPEN)
    assert result.status is Status.RESTING, result


def fills(result_trades: tuple) -> list[tuple[int, int, int]]:
    return [(t.maker_order_id, t.price_fen, t.quantity) for t in result_trades]


def test_cancel_of_a_filled_order_is_rejected_with_order_filled() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 10)
    assert book.place(2, BUY, LIMIT, 100, 10, owner="T", now=OPEN).status is Status.FILLED
    before = book.snapshot()
    result = book.cancel(1)
    assert result.code is Code.ORDER_FILLED
    assert result.status is Status.REJECTED
    assert book.snapshot() == before


def test_stale_cancel_is_rejected_and_changes_nothing() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    assert book.cancel(1).cancelled_quantity == 10
    before = book.snapshot()
    assert book.cancel(1).code is Code.ORDER_CANCELLED
    assert book.reduce(1, 5).code is Code.ORDER_CANCELLED
    assert book.cancel(77).code is Code.UNKNOWN_ORDER
    assert book.snapshot() == before


def test_cancel_of_the_last_order_removes_its_level() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    rest(book, 2, BUY, 99, 10)
    rest(book, 3, SELL, 105, 10)
    book.cancel(1)
    assert book.best_bid() == 99
    assert [level.price_fen for level in book.depth().bids] == [99]
    book.cancel(3)
    assert book.best_ask() is None
    assert book.snapshot().asks == ()
    assert book.check_invariants() == []


def test_cancel_of_a_middle_order_keeps_the_queue_linked() -> None:
    book = plain()
    for order_id in (1, 2, 3):
        rest(book, order_id, SELL, 100, 10)
    book.cancel(2)
    assert book.check_invariants() == []
    result = book.place(4, BUY, LIMIT, 100, 20, owner="T", now=OPEN)
    assert [t.maker_order_id for t in result.trades] == [1, 3]


def test_a_sweep_crosses_levels_best_first_each_at_the_makers_price() -> None:
    book = plain()
    rest(book, 1, SELL, 102, 5)
    rest(book, 2, SELL, 100, 5)
    rest(book, 3, SELL, 101, 5)
    rest(book, 4, SELL, 101, 5)
    result = book.place(9, BUY, LIMIT, 102, 18, owner="T", now=OPEN)
    assert fills(result.trades) == [(2, 100, 5), (3, 101, 5), (4, 101, 5), (1, 102, 3)]
    assert result.status is Status.FILLED
    assert [t.seq for t in result.trades] == [1, 2, 3, 4]
    assert book.depth().asks == (LevelView(102, 2, 1),)
    assert book.check_invariants() == []


def test_a_sweep_stops_at_the_limit_and_rests_the_remainder() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 103, 5)
    result = book.place(9, BUY, LIMIT, 101, 8, owner="T", now=OPEN)
    assert fills(result.trades) == [(1, 100, 5)]
    assert (result.status, result.filled_quantity, result.resting_quantity) == (Status.RESTING, 5, 3)
    assert (book.best_bid(), book.best_ask()) == (101, 103)


def test_the_taker_always_gets_the_makers_price() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, BUY, 90, 5)
    buy = book.place(3, BUY, LIMIT, 110, 5, owner="T", now=OPEN)
    sell = book.place(4, SELL, LIMIT, 80, 5, owner="T", now=OPEN)
    assert [t.price_fen for t in buy.trades] == [100]
    assert [t.price_fen for t in sell.trades] == [90]


def test_an_ioc_residual_never_rests() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 4)
    result = book.place(2, BUY, IOC, 101, 10, owner="T", now=OPEN)
    assert (result.filled_quantity, result.resting_quantity, result.cancelled_quantity) == (4, 0, 6)
    assert result.status is Status.CANCELLED
    assert result.cancel_reason is CancelReason.UNFILLED_RESIDUAL
    assert book.best_bid() is None
    assert book.order(2) is None
    assert book.cancel(2).code is Code.ORDER_CANCELLED


def test_a_market_order_sweeps_and_never_rests() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 4)
    rest(book, 2, BUY, 50, 4)
    result = book.place(3, SELL, MARKET, None, 10, owner="T", now=OPEN)
    assert fills(result.trades) == [(1, 100, 4), (2, 50, 4)]
    assert result.cancelled_quantity == 2
    assert book.best_ask() is None
    empty = book.place(4, BUY, MARKET, None, 10, owner="T", now=OPEN)
    assert (empty.status, empty.cancelled_quantity, empty.trades) == (Status.CANCELLED, 10, ())


def test_a_market_order_with_a_price_is_refused() -> None:
    assert plain().place(1, BUY, MARKET, 100, 1, owner="T", now=OPEN).code is Code.INVALID_PRICE


def test_fok_that_cannot_fill_completely_has_no_effect_at_all() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 101, 5)
    rest(book, 3, SELL, 105, 50)
    before = book.snapshot()
    killed = book.place(9, BUY, FOK, 101, 11, owner="T", now=OPEN)
    assert (killed.code, killed.status, killed.trades) == (Code.OK, Status.CANCELLED, ())
    assert killed.cancel_reason is CancelReason.FOK_UNFILLABLE
    after = book.snapshot()
    assert (after.bids, after.asks, after.trade_seq) == (before.bids, before.asks, before.trade_seq)


def test_fok_that_can_fill_fills_completely() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 101, 5)
    result = book.place(9, BUY, FOK, 101, 10, owner="T", now=OPEN)
    assert result.status is Status.FILLED
    assert fills(result.trades) == [(1, 100, 5), (2, 101, 5)]


def test_reduce_keeps_time_priority() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 10)
    rest(book, 2, SELL, 100, 10)
    reduced = book.reduce(1, 7)
    assert (reduced.code, reduced.resting_quantity, reduced.cancelled_quantity) == (Code.OK, 3, 7)
    result = book.place(3, BUY, LIMIT, 100, 5, owner="T", now=OPEN)
    assert fills(result.trades) == [(1, 100, 3), (2, 100, 2)]
    assert book.check_invariants() == []


def test_reduce_by_the_whole_remainder_cancels_the_order() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    result = book.reduce(1, 25)
    assert (result.status, result.cancelled_quantity) == (Status.CANCELLED, 10)
    assert result.cancel_reason is CancelReason.REDUCED_TO_ZERO
    assert book.best_bid() is None
    assert book.reduce(1, 1).code is Code.ORDER_CANCELLED


def test_reduce_by_a_non_positive_quantity_is_refused() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    assert book.reduce(1, 0).code is Code.INVALID_QUANTITY


def test_a_reused_order_id_is_refused() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    assert book.place(1, SELL, LIMIT, 200, 1, owner="T", now=OPEN).code is Code.DUPLICATE_ORDER_ID
    book.cancel(1)
    assert book.place(1, SELL, LIMIT, 200, 1, owner="T", now=OPEN).code is Code.DUPLICATE_ORDER_ID


def test_only_the_owner_may_cancel_or_reduce() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10, owner="A")
    assert book.cancel(1, owner="B").code is Code.NOT_OWNER
    assert book.reduce(1, 1, owner="B").code is Code.NOT_OWNER
    assert book.cancel(1, owner="A").ok


def test_invalid_quantity_and_price_are_refused() -> None:
    book = plain()
    assert book.place(1, BUY, LIMIT, 100, 0, owner="T", now=OPEN).code is Code.INVALID_QUANTITY
    assert book.place(2, BUY, LIMIT, 0, 5, owner="T", now=OPEN).code is Code.INVALID_PRICE
    assert book.place(3, BUY, LIMIT, None, 5, owner="T", now=OPEN).code is Code.INVALID_PRICE


# ---------------------------------------------------------------- checks: band, tick, lot, maximum


def banded(**changes: object) -> Book:
    settings: dict[str, object] = {"prev_close_fen": 5_555, "check_session": False, "stp": SelfTradePrevention.OFF}
    settings.update(changes)
    return Book(BookConfig(**settings))  # type: ignore[arg-type]


def test_band_edges_are_rounded_inward_to_the_tick() -> None:
    # 5,555 × 0.9 = 4,999.5 and 5,555 × 1.1 = 6,110.5: the legal band is 5,000 .. 6,110 fen.
    book = banded()
    assert book.place(1, BUY, LIMIT, 4_999, 1, owner="T", now=OPEN).code is Code.OUTSIDE_BAND
    assert book.place(2, BUY, LIMIT, 5_000, 1, owner="T", now=OPEN).ok
    assert book.place(3, SELL, LIMIT, 6_110, 1, owner="T", now=OPEN).ok
    assert book.place(4, SELL, LIMIT, 6_111, 1, owner="T", now=OPEN).code is Code.OUTSIDE_BAND


def test_band_edges_round_inward_to_a_coarse_tick() -> None:
    # Tick 10 fen: 4,999.5 rounds up to 5,000 and 6,110.5 down to 6,110.
    book = banded(tick_fen=10, prev_close_fen=5_555)
    assert BookConfig(prev_close_fen=5_555, tick_fen=10).band == (5_000, 6_110)
    assert BookConfig(prev_close_fen=5_550, tick_fen=100).band == (5_000, 6_100)
    assert book.place(1, BUY, LIMIT, 4_990, 1, owner="T", now=OPEN).code is Code.OUTSIDE_BAND


def test_a_market_order_is_bounded_by_the_band() -> None:
    book = banded()
    rest(book, 1, SELL, 6_000, 5)
    result = book.place(2, BUY, MARKET, None, 10, owner="T", now=OPEN)
    assert result.filled_quantity == 5 and result.cancelled_quantity == 5


def test_an_off_tick_price_is_refused() -> None:
    book = banded(tick_fen=10)
    assert book.place(1, BUY, LIMIT, 5_555, 1, owner="T", now=OPEN).code is Code.OFF_TICK
    assert book.place(2, BUY, LIMIT, 5_550, 1, owner="T", now=OPEN).ok


def test_an_off_lot_quantity_is_refused() -> None:
    book = banded(lot_quantity=100)
    assert book.place(1, BUY, LIMIT, 5_555, 150, owner="T", now=OPEN).code is Code.OFF_LOT
    assert book.place(2, BUY, LIMIT, 5_555, 200, owner="T", now=OPEN).ok
    assert book.reduce(2, 50).code is Code.OFF_LOT


def test_the_maximum_quantity_is_enforced() -> None:
    book = banded(quantity_max=99_999)
    assert book.place(1, BUY, LIMIT, 5_555, 100_000, owner="T", now=OPEN).code is Code.QUANTITY_ABOVE_MAX
    assert book.place(2, BUY, LIMIT, 5_555, 99_999, owner="T", now=OPEN).ok


def test_checks_switched_off_accept_what_they_would_refuse() -> None:
    book = banded(tick_fen=10, lot_quantity=100, check_band=False, check_tick=False, check_lot=False)
    assert book.place(1, BUY, LIMIT, 1_234, 7, owner="T", now=OPEN).ok


# ---------------------------------------------------------------- sessions


def timed(is_working_day: object = None) -> Book:
    return Book(BookConfig(is_working_day=is_working_day))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("at", "accepted"),
    [
        (datetime(2025, 3, 3, 1, 30, tzinfo=UTC), True),  # 09:30 Shanghai: opens
        (datetime(2025, 3, 3, 1, 29, 59, tzinfo=UTC), False),
        (datetime(2025, 3, 3, 3, 29, 59, tzinfo=UTC), True),
        (datetime(2025, 3, 3, 3, 30, tzinfo=UTC), False),  # 11:30: lunch break
        (datetime(2025, 3, 3, 5, 0, tzinfo=UTC), True),  # 13:00
        (datetime(2025, 3, 3, 7, 0, tzinfo=UTC), False),  # 15:00: closed
        (datetime(2025, 3, 8, 2, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_orders_are_accepted_only_in_trading_sessions(at: datetime, accepted: bool) -> None:
    result = timed().place(1, BUY, LIMIT, 100, 1, owner="T", now=at)
    assert result.ok is accepted
    if not accepted:
        assert result.code is Code.MARKET_CLOSED


def test_a_holiday_from_the_injected_calendar_is_closed() -> None:
    holidays = {date(2025, 3, 3)}
    book = timed(lambda day: day not in holidays)
    assert book.place(1, BUY, LIMIT, 100, 1, owner="T", now=OPEN).code is Code.MARKET_CLOSED


def test_an_adjusted_weekend_working_day_is_still_closed() -> None:
    # 2025-04-27 is a Sunday that the State Council made a working day; exchanges stay closed.
    book = timed(lambda day: True)
    sunday = datetime(2025, 4, 27, 2, 0, tzinfo=UTC)
    assert book.place(1, BUY, LIMIT, 100, 1, owner="T", now=sunday).code is Code.MARKET_CLOSED


def test_a_naive_time_is_refused() -> None:
    naive = datetime(2025, 3, 3, 10, 0)  # a naive time is the point of this test
    assert timed().place(1, BUY, LIMIT, 100, 1, owner="T", now=naive).code is Code.INVALID_TIME


def test_cancels_are_accepted_outside_sessions() -> None:
    book = timed()
    rest(book, 1, BUY, 100, 1)
    assert book.cancel(1).ok


# ---------------------------------------------------------------- self-trade prevention


def stp_book(policy: SelfTradePrevention) -> Book:
    return Book(BookConfig(stp=policy, check_session=False))


def test_self_trade_is_prevented_by_cancelling_the_takers_remainder() -> None:
    book = stp_book(SelfTradePrevention.CANCEL_TAKER)
    rest(book, 1, SELL, 100, 5, owner="A")
    rest(book, 2, SELL, 100, 5, owner="B")
    result = book.place(3, BUY, LIMIT, 100, 8, owner="A", now=OPEN)
    assert result.trades == ()
    assert (result.status, result.cancel_reason, result.cancelled_quantity) == (
        Status.CANCELLED,
        CancelReason.SELF_TRADE,
        8,
    )
    assert book.order(1) is not None and book.order(2) is not None
    assert book.check_invariants() == []


def test_self_trade_prevention_lets_earlier_fills_stand() -> None:
    book = stp_book(SelfTradePrevention.CANCEL_TAKER)
    rest(book, 1, SELL, 100, 5, owner="B")
    rest(book, 2, SELL, 100, 5, owner="A")
    result = book.place(3, BUY, LIMIT, 101, 8, owner="A", now=OPEN)
    assert fills(result.trades) == [(1, 100, 5)]
    assert (result.filled_quantity, result.cancelled_quantity) == (5, 3)
    assert book.best_bid() is None


def test_cancel_maker_policy_removes_own_resting_orders_and_continues() -> None:
    book = stp_book(SelfTradePrevention.CANCEL_MAKER)
    rest(book, 1, SELL, 100, 5, owner="A")
    rest(book, 2, SELL, 100, 5, owner="B")
    result = book.place(3, BUY, LIMIT, 100, 8, owner="A", now=OPEN)
    assert result.maker_cancels == (MakerCancel(1, SELL, "A", 5),)
    assert fills(result.trades) == [(2, 100, 5)]
    assert (result.status, result.resting_quantity) == (Status.RESTING, 3)
    assert book.status(1) is Status.CANCELLED
    assert book.check_invariants() == []


def test_cancel_both_policy_removes_the_maker_and_the_takers_remainder() -> None:
    book = stp_book(SelfTradePrevention.CANCEL_BOTH)
    rest(book, 1, SELL, 100, 5, owner="A")
    result = book.place(3, BUY, LIMIT, 100, 8, owner="A", now=OPEN)
    assert result.maker_cancels == (MakerCancel(1, SELL, "A", 5),)
    assert (result.status, result.cancelled_quantity) == (Status.CANCELLED, 8)
    assert book.best_ask() is None and book.best_bid() is None
    assert book.check_invariants() == []


def test_fok_counts_liquidity_only_up_to_an_own_order_under_cancel_taker() -> None:
    book = stp_book(SelfTradePrevention.CANCEL_TAKER)
    rest(book, 1, SELL, 100, 5, owner="B")
    rest(book, 2, SELL, 100, 5, owner="A")
    rest(book, 3, SELL, 100, 5, owner="B")
    assert book.place(4, BUY, FOK, 100, 10, owner="A", now=OPEN).cancel_reason is CancelReason.FOK_UNFILLABLE
    assert book.order(2) is not None
    assert book.place(5, BUY, FOK, 100, 10, owner="C", now=OPEN).status is Status.FILLED


def test_self_trade_is_allowed_when_prevention_is_off() -> None:
    book = stp_book(SelfTradePrevention.OFF)
    rest(book, 1, SELL, 100, 5, owner="A")
    assert book.place(2, BUY, LIMIT, 100, 5, owner="A", now=OPEN).status is Status.FILLED


# ---------------------------------------------------------------- fees


def test_fees_are_integer_fen_rounded_down_per_trade() -> None:
    book = Book(BookConfig(check_session=False, taker_fee_bps=5, maker_fee_bps=3))
    rest(book, 1, SELL, 1_001, 10, owner="M")
    # Amount 10,010 fen: taker 5 bps = 5.005 fen → 5; maker 3 bps = 3.003 fen → 3.
    trade = book.place(2, BUY, LIMIT, 1_001, 10, owner="T", now=OPEN).trades[0]
    assert (trade.notional_fen, trade.taker_fee_fen, trade.maker_fee_fen) == (10_010, 5, 3)
    rest(book, 3, SELL, 1_999, 1, owner="M")
    # Amount 1,999 fen: taker 5 bps = 0.9995 fen → 0 (rounded down, never up: see trading/domain/money.py).
    trade = book.place(4, BUY, LIMIT, 1_999, 1, owner="T", now=OPEN).trades[0]
    assert (trade.taker_fee_fen, trade.maker_fee_fen) == (0, 0)


def test_amounts_follow_the_instrument_scale() -> None:
    """Energy-use rights: prices per tce, quantities in kgce (scale 3). 1.000 tce at 51.00 元 is 5,100 fen."""
    book = Book(BookConfig(check_session=False, scale=3, taker_fee_bps=10))
    rest(book, 1, SELL, 5_100, 1_500, owner="M")
    trade = book.place(2, BUY, LIMIT, 5_100, 1_000, owner="T", now=OPEN).trades[0]
    assert (trade.quantity, trade.notional_fen, trade.taker_fee_fen) == (1_000, 5_100, 5)
    trade = book.place(3, BUY, LIMIT, 5_100, 137, owner="T", now=OPEN).trades[0]
    assert trade.notional_fen == 698  # 0.137 tce × 51.00 = 6.987 元, rounded down to the fen


def test_the_listed_maximum_is_in_display_units() -> None:
    assert BookConfig.national_listed(10_000, None).quantity_max == 99_999
    assert BookConfig.national_listed(10_000, None, scale=3).quantity_max == 99_999_000


def test_trades_carry_buyer_and_seller_views() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 5, owner="Buyer")
    trade = book.place(2, SELL, LIMIT, 100, 5, owner="Seller", now=OPEN).trades[0]
    assert (trade.buyer_order_id, trade.seller_order_id) == (1, 2)
    assert (trade.buyer_owner, trade.seller_owner, trade.notional_fen) == ("Buyer", "Seller", 500)


# ---------------------------------------------------------------- listed agreement mode (挂牌 / 摘牌)


def listed() -> Book:
    return Book(BookConfig.national_listed(prev_close_fen=10_000, is_working_day=None))


def test_listed_mode_rests_listings_and_refuses_automatic_kinds() -> None:
    book = listed()
    assert book.place(1, BUY, LIMIT, 9_900, 100, owner="A", now=OPEN).status is Status.RESTING
    assert book.place(2, BUY, MARKET, None, 100, owner="A", now=OPEN).code is Code.WRONG_MODE
    assert book.place(3, BUY, IOC, 9_900, 100, owner="A", now=OPEN).code is Code.WRONG_MODE
    assert book.place(4, BUY, LIMIT, 9_900, 100_000, owner="A", now=OPEN).code is Code.QUANTITY_ABOVE_MAX


def test_a_listing_that_would_cross_is_refused() -> None:
    book = listed()
    rest(book, 1, SELL, 10_000, 100)
    assert book.place(2, BUY, LIMIT, 10_000, 100, owner="B", now=OPEN).code is Code.WOULD_CROSS
    assert book.place(3, BUY, LIMIT, 9_999, 100, owner="B", now=OPEN).ok


def test_a_pick_trades_at_the_listing_price_and_may_be_partial() -> None:
    book = listed()
    rest(book, 1, SELL, 10_100, 100, owner="S")
    rest(book, 2, SELL, 10_050, 100, owner="S")
    result = book.pick(9, BUY, 1, 40, owner="B", now=OPEN)
    assert result.status is Status.FILLED
    assert [(t.maker_order_id, t.price_fen, t.quantity) for t in result.trades] == [(1, 10_100, 40)]
    assert book.order(1) is not None and book.order(1).quantity == 60  # type: ignore[union-attr]
    assert book.pick(10, BUY, 1, 61, owner="B", now=OPEN).code is Code.PICK_QUANTITY_ABOVE_LISTING
    assert book.pick(11, BUY, 1, 60, owner="B", now=OPEN).ok
    assert book.status(1) is Status.FILLED
    assert book.pick(12, BUY, 1, 1, owner="B", now=OPEN).code is Code.ORDER_FILLED
    assert book.check_invariants() == []


def test_a_pick_outside_the_best_five_levels_is_refused() -> None:
    book = listed()
    for level in range(6):
        rest(book, 100 + level, SELL, 10_000 + level * 10, 10, owner="S")
    before = book.snapshot()
    assert book.pick(1, BUY, 105, 10, owner="B", now=OPEN).code is Code.PICK_OUTSIDE_BEST_LEVELS
    assert book.snapshot() == before
    assert book.pick(2, BUY, 104, 10, owner="B", now=OPEN).ok
    # The sixth level became the fifth once a better level emptied.
    assert book.pick(3, BUY, 100, 10, owner="B", now=OPEN).ok
    assert book.pick(4, BUY, 105, 10, owner="B", now=OPEN).ok


def test_a_pick_must_take_the_other_side_and_not_ones_own_listing() -> None:
    book = listed()
    rest(book, 1, SELL, 10_000, 10, owner="S")
    assert book.pick(2, SELL, 1, 10, owner="B", now=OPEN).code is Code.PICK_WRONG_SIDE
    assert book.pick(3, BUY, 1, 10, owner="S", now=OPEN).code is Code.SELF_TRADE
    assert book.pick(4, BUY, 99, 10, owner="B", now=OPEN).code is Code.UNKNOWN_ORDER


def test_a_pick_is_refused_in_continuous_mode() -> None:
    book = plain()
    rest(book, 1, SELL, 100, 10)
    assert book.pick(2, BUY, 1, 10, owner="B", now=OPEN).code is Code.WRONG_MODE


def test_listed_book_uses_the_session_calendar() -> None:
    book = listed()
    lunch = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)
    assert book.place(1, SELL, LIMIT, 10_000, 10, owner="S", now=lunch).code is Code.MARKET_CLOSED
    assert BookConfig.national_listed(10_000, None).mode is BookMode.LISTED


# ---------------------------------------------------------------- invariants can fail


def test_check_invariants_reports_a_corrupted_level_total() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    level = book._bid_levels[100]
    level.total += 1
    assert any("totals" in problem for problem in book.check_invariants())


def test_check_invariants_reports_a_crossed_book_and_an_empty_level() -> None:
    book = plain()
    rest(book, 1, BUY, 100, 10)
    rest(book, 2, SELL, 101, 10)
    book._ask_levels[-101].price_fen = 99
    book._ask_keys[-1] = -99
    book._ask_levels[-99] = book._ask_levels.pop(-101)
    book._ask_levels[-99].key = -99
    problems = book.check_invariants()
    assert any("crossed" in problem for problem in problems)
    empty = plain()
    rest(empty, 1, BUY, 100, 10)
    empty._bid_levels[100].head = None
    assert any("empty level" in problem for problem in empty.check_invariants())
