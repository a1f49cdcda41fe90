"""Integer arithmetic on int64 columns for the vector path: the same formulas as incentives.domain.arith
(half up for benefits, down for caps, shares by cross-multiplying), refusing a product that could overflow int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from incentives.domain.arith import BP

INT64_MAX = 2**63 - 1
I64 = np.int64

Arr = np.ndarray[Any, Any]


def _max_abs(value: Arr | int) -> int:
    if isinstance(value, np.ndarray):
        return int(np.max(np.abs(value))) if value.size else 0
    return abs(int(value))


def _bounded(*factors: Arr | int) -> None:
    """Refuse a product that could overflow int64 (the scalar path has no limit, so it would differ)."""
    bound = 2
    for factor in factors:
        bound *= max(_max_abs(factor), 1)
    if bound > INT64_MAX:
        raise OverflowError("a product of batch operands would exceed int64; check the magnitudes given")


def _nonneg(*values: Arr | int) -> None:
    for value in values:
        low = (int(np.min(value)) if value.size else 0) if isinstance(value, np.ndarray) else int(value)
        if low < 0:
            raise ValueError("amount and numerator must be >= 0")


def mdh(amount: Arr, numerator: Arr | int, denominator: Arr | int) -> Arr:
    """amount × numerator / denominator, half up (benefits)."""
    _nonneg(amount, numerator)
    _bounded(amount, numerator)
    return (2 * amount * numerator + denominator) // (2 * np.asarray(denominator, dtype=I64))


def mdf(amount: Arr, numerator: Arr | int, denominator: Arr | int) -> Arr:
    """amount × numerator / denominator, rounded down (caps)."""
    _nonneg(amount, numerator)
    _bounded(amount, numerator)
    return (amount * numerator) // np.asarray(denominator, dtype=I64)


def share_at_least(numerator: Arr, denominator: Arr, threshold_bp: Arr) -> Arr:
    """numerator / denominator >= threshold_bp / 10000, by cross-multiplying (0 when the denominator is 0)."""
    _bounded(numerator, BP)
    _bounded(threshold_bp, denominator)
    return (denominator > 0) & (numerator * BP >= threshold_bp * denominator)


def share_at_most(numerator: Arr, denominator: Arr, threshold_bp: Arr) -> Arr:
    """numerator / denominator <= threshold_bp / 10000 (true when the denominator is 0: no share at all)."""
    _bounded(numerator, BP)
    _bounded(threshold_bp, denominator)
    result: Arr = (denominator == 0) | (numerator * BP <= threshold_bp * denominator)
    return result


def is_leap(year: Arr) -> Arr:
    """Gregorian leap years, element-wise."""
    result: Arr = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return result


def anniversary_key(start_key: Arr, years: Arr | int) -> Arr:
    """yyyymmdd key of `start` moved by whole `years` (29 February → 1 March in a common year), as
    `incentives.domain.programmes.common.anniversary`."""
    year = start_key // 10_000 + years
    month_day = start_key % 10_000
    result: Arr = year * 10_000 + np.where((month_day == 229) & ~is_leap(year), 301, month_day)
    return result
