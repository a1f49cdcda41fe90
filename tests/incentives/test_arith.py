"""Integer rounding shared by the scalar and vector paths (incentives/domain/arith.py, incentives/batch/)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from incentives.batch import mdf, mdh
from incentives.domain.arith import (
    MAX_FEN,
    month_index,
    mul_div_ceil,
    mul_div_floor,
    mul_div_half_up,
    years_after,
)

amounts = st.integers(0, MAX_FEN)
numerators = st.integers(0, 20_000)
denominators = st.integers(1, 20_000)


@given(amounts, numerators, denominators)
def test_half_up_floor_and_ceil_match_exact_fractions(amount, numerator, denominator):
    exact = Fraction(amount * numerator, denominator)
    assert mul_div_half_up(amount, numerator, denominator) == math.floor(exact + Fraction(1, 2))
    assert mul_div_floor(amount, numerator, denominator) == math.floor(exact)
    assert mul_div_ceil(amount, numerator, denominator) == math.ceil(exact)


@given(st.lists(st.tuples(amounts, st.integers(0, 10_000)), min_size=1, max_size=50))
def test_vector_rounding_equals_scalar_rounding(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    n = np.array([p[1] for p in pairs], dtype=np.int64)
    assert mdh(a, n, 10_000).tolist() == [mul_div_half_up(x, y, 10_000) for x, y in pairs]
    assert mdf(a, n, 10_000).tolist() == [mul_div_floor(x, y, 10_000) for x, y in pairs]


def test_half_up_rounds_the_half_fen_up():
    assert mul_div_half_up(1, 5000, 10_000) == 1
    assert mul_div_half_up(1, 4999, 10_000) == 0


def test_day_keys_compare_anniversaries_of_29_february():
    # Five years after 2020-02-29 is the key 20250229: 28 February is inside, 1 March outside.
    end = years_after(20200229, 5)
    assert 20250228 < end < 20250301


def test_month_index_counts_months():
    assert month_index(20240115) - month_index(20231231) == 1
