"""What a trade costs, in whole fen, for an instrument of any scale: the one rule every money path uses.

Prices are integer fen per *display* unit (元/吨 for allowances, 元/tce for energy-use rights, 元/个 for green
certificates, 元/吨 for discharge permits); quantities are integers of the *base* unit, of which `10**scale` make
one display unit (scale 0: 1 tCO2e or 1 certificate; scale 3: 1 kgce = 0.001 tce, 1 kg = 0.001 t). So the exact
value of a trade is `price_fen × quantity / 10**scale` fen, which for a scaled instrument can carry a fraction
of a fen (0.001 tce at 51.00 元/tce is 5.1 fen).

The rounding rule, the only one: **the amount of a trade is its exact value rounded down to the whole fen, and a
fee is `fee_bps / 10,000` of that amount, also rounded down.** The buyer pays the amount plus its fee, the
seller receives the amount less its fee, the fee account receives both fees: every fen paid is a fen received.

Why down and not half up: an order fills in parts, and a buy order holds its funds before it trades. Rounding
down is superadditive (`⌊a⌋ + ⌊b⌋ ≤ ⌊a + b⌋`), so however an order's quantity is split into fills, at prices no
worse than its limit, the fills never cost more than `buy_hold_fen` of the whole quantity, and a fill's cost
plus the hold for the remainder never exceeds the hold it came from. Half-up rounding gives no such bound (ten
fills each rounding 0.5 fen up cost 5 fen more than one fill of the same total). The buyer never pays more
than the exact value; the difference to it is below one fen per trade.
"""

from __future__ import annotations

from trading.domain.bands import BPS_PER_UNIT


def base_per_display(scale: int) -> int:
    """How many base units make one display unit: 1 for scale 0, 1,000 for scale 3."""
    if scale < 0:
        raise ValueError("scale must not be negative")
    return int(10**scale)


def notional_fen(price_fen: int, quantity: int, scale: int) -> int:
    """The amount of a trade of `quantity` base units at `price_fen` per display unit, rounded down to the fen.

    >>> notional_fen(5_100, 1_000, 3)   # 1.000 tce at 51.00 元/tce
    5100
    >>> notional_fen(5_100, 1, 3)       # 0.001 tce: 5.1 fen, rounded down
    5
    """
    if price_fen < 0 or quantity < 0:
        raise ValueError("price and quantity must not be negative")
    return price_fen * quantity // base_per_display(scale)


def fee_fen(amount_fen: int, fee_bps: int) -> int:
    """The fee on a trade's amount: `fee_bps` basis points of it, rounded down to the fen."""
    if amount_fen < 0 or fee_bps < 0:
        raise ValueError("amount and fee must not be negative")
    return amount_fen * fee_bps // BPS_PER_UNIT


def buy_hold_fen(price_fen: int, quantity: int, scale: int, fee_bps: int) -> int:
    """The funds a buy of `quantity` at up to `price_fen` holds: the largest amount plus fee its fills can cost.

    A fill of q at p ≤ price costs `⌊p·q/S⌋ + ⌊⌊p·q/S⌋·bps/10⁴⌋ ≤ ⌊price·q/S⌋ + ⌊price·q·bps/(S·10⁴)⌋`, and both
    terms of the bound are superadditive in q, so the fills of one hold, plus the hold re-taken for what is left,
    never need more than this (S = 10**scale; `fee_bps` the largest fee the order can be charged).
    """
    if price_fen < 0 or quantity < 0 or fee_bps < 0:
        raise ValueError("price, quantity and fee must not be negative")
    exact = price_fen * quantity
    per = base_per_display(scale)
    return exact // per + exact * fee_bps // (per * BPS_PER_UNIT)
