"""The one money rule (trading/domain/money.py): amounts and fees in whole fen, rounded down, at every scale."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.domain.money import buy_hold_fen, fee_fen, notional_fen


@pytest.mark.parametrize(
    ("price_fen", "quantity", "scale", "expected"),
    [
        (5_100, 1_000, 3, 5_100),  # 1.000 tce at 51.00 元/tce is 51.00 元, not 51,000.00
        (5_100, 1, 3, 5),  # 0.001 tce: 5.1 fen, rounded down
        (5_100, 137, 3, 698),  # 0.137 tce: 698.7 fen
        (9_800, 865_300, 0, 84_799_400_00),  # tCO2e, scale 0: exact
        (12_345, 2_500, 3, 30_862),  # 2.5 t of permits at 123.45 元/t: 308.625 元
        (1, 999, 3, 0),  # under a fen
    ],
)
def test_the_amount_is_price_per_display_unit_times_quantity_rounded_down(
    price_fen: int, quantity: int, scale: int, expected: int
) -> None:
    assert notional_fen(price_fen, quantity, scale) == expected


@pytest.mark.parametrize(
    ("amount_fen", "bps", "expected"),
    [(10_000, 5, 5), (1_000, 5, 0), (1_999, 5, 0), (2_000, 5, 1), (12_345_678, 3, 3_703), (10_000, 0, 0)],
)
def test_the_fee_is_basis_points_of_the_amount_rounded_down(amount_fen: int, bps: int, expected: int) -> None:
    assert fee_fen(amount_fen, bps) == expected


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        notional_fen(-1, 1, 0)
    with pytest.raises(ValueError):
        notional_fen(1, 1, -1)
    with pytest.raises(ValueError):
        fee_fen(1, -1)


@given(
    scale=st.sampled_from([0, 3]),
    limit=st.integers(min_value=1, max_value=10_000_000),
    bps=st.integers(min_value=0, max_value=500),
    fills=st.lists(
        st.tuples(st.integers(min_value=1, max_value=5_000), st.integers(min_value=0, max_value=10_000_000)),
        min_size=1,
        max_size=30,
    ),
    rest=st.integers(min_value=0, max_value=5_000),
)
def test_fills_plus_the_hold_for_the_rest_never_exceed_the_hold_they_came_from(
    scale: int, limit: int, bps: int, fills: list[tuple[int, int]], rest: int
) -> None:
    """However a buy at `limit` is cut into fills at prices no worse than the limit, the fills' amounts and fees,
    plus the hold re-taken for the rest, fit in the first hold: a settlement never asks for more than is held."""
    total = sum(q for q, _ in fills) + rest
    held = buy_hold_fen(limit, total, scale, bps)
    spent = 0
    for quantity, drawn_price in fills:
        amount = notional_fen(min(drawn_price, limit), quantity, scale)
        spent += amount + fee_fen(amount, bps)
        remaining = total - quantity
        assert spent + buy_hold_fen(limit, remaining, scale, bps) <= held
        total, held, spent = remaining, buy_hold_fen(limit, remaining, scale, bps), 0
