"""Band and rounding arithmetic, and session windows (amounts and fees: test_money.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from trading.domain.bands import Band, price_band, round_half_up_to_tick
from trading.domain.sessions import BLOCK_SESSIONS, LISTED_SESSIONS, Sessions, Window, business_date


@pytest.mark.parametrize(
    ("prev_close_fen", "band_bps", "tick_fen", "expected"),
    [
        (10_000, 1_000, 1, Band(9_000, 11_000)),  # exact edges stay
        (5_555, 1_000, 1, Band(5_000, 6_110)),  # 4,999.5 up, 6,110.5 down
        (5_555, 3_000, 1, Band(3_889, 7_221)),  # 3,888.5 up, 7,221.5 down
        (5_555, 1_000, 10, Band(5_000, 6_110)),
        (5_551, 1_000, 100, Band(5_000, 6_100)),  # 4,995.9 up to 5,000; 6,106.1 down to 6,100
        (3, 1_000, 1, Band(3, 3)),  # 2.7 up to 3, 3.3 down to 3
        (100, 20_000, 1, Band(1, 300)),  # the lower edge never drops below one tick
    ],
)
def test_price_band_edges_round_inward(prev_close_fen: int, band_bps: int, tick_fen: int, expected: Band) -> None:
    assert price_band(prev_close_fen, band_bps, tick_fen) == expected


def test_price_band_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        price_band(0, 1_000)
    with pytest.raises(ValueError):
        price_band(100, -1)


def test_round_half_up_to_tick() -> None:
    assert round_half_up_to_tick(20_001, 2, 1) == 10_001  # 10,000.5 → 10,001
    assert round_half_up_to_tick(19_999, 2, 1) == 10_000  # 9,999.5 → 10,000
    assert round_half_up_to_tick(10_050, 1, 100) == 10_100  # 100.5 ticks → 101
    assert round_half_up_to_tick(10_049, 1, 100) == 10_000


def test_session_windows_are_half_open_in_shanghai_time() -> None:
    monday = date(2025, 3, 3)
    at = lambda hh, mm: datetime(2025, 3, 3, hh - 8, mm, tzinfo=UTC)  # noqa: E731 - Shanghai wall clock
    assert LISTED_SESSIONS.is_open(at(9, 30))
    assert not LISTED_SESSIONS.is_open(at(11, 30))
    assert not BLOCK_SESSIONS.is_open(at(10, 0))
    assert BLOCK_SESSIONS.is_open(at(14, 59))
    assert business_date(datetime(2025, 3, 2, 16, 0, tzinfo=UTC)) == monday
    with pytest.raises(ValueError):
        Window(time(15, 0), time(13, 0))
    custom = Sessions((Window(time(9, 0), time(10, 0)),), weekdays=(5,))
    assert custom.is_open(datetime(2025, 3, 8, 1, 30, tzinfo=UTC))  # Saturday 09:30
