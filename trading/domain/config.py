"""The rules one order book runs with (`BookConfig`): mode, tick, scale, lot, maximum, band, fees, self-trade
prevention, sessions, and switches that turn checks off for differential tests against peer engines."""

from __future__ import annotations

from dataclasses import dataclass

from trading.domain.bands import Band, price_band
from trading.domain.model import BookMode, SelfTradePrevention
from trading.domain.sessions import LISTED_SESSIONS, Sessions, WorkingDayTest


@dataclass(frozen=True, slots=True)
class BookConfig:
    """The rules of one book. Every check can be switched off (differential tests against peer engines).

    - `prev_close_fen`: the band is `prev_close ± band_bps / 10,000`, rounded inward to the tick; no band
      when None or `check_band` is False.
    - `scale`: the instrument's quantity scale: quantities are base units, `10**scale` to the display unit in
      which prices are quoted; a trade's amount is `money.notional_fen(price, quantity, scale)`.
    - `lot_quantity`, `quantity_max`: in base units (the service converts them from display units); the listed
      agreement's largest order is under 100,000 display units, so 99,999 × 10**scale. None for no maximum.
    - `stp`: self-trade prevention between orders of the same `owner` (the enterprise id).
    - `taker_fee_bps` / `maker_fee_bps`: fees per trade in basis points of the notional, default 0.
    - `is_working_day`: injected calendar (`core.workdays.is_working_day`); None checks weekdays only.
    """

    mode: BookMode = BookMode.CONTINUOUS
    tick_fen: int = 1
    scale: int = 0
    lot_quantity: int = 1
    quantity_max: int | None = None
    prev_close_fen: int | None = None
    band_bps: int = 1000
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER
    taker_fee_bps: int = 0
    maker_fee_bps: int = 0
    pick_levels_max: int = 5
    sessions: Sessions = LISTED_SESSIONS
    is_working_day: WorkingDayTest | None = None
    check_band: bool = True
    check_tick: bool = True
    check_lot: bool = True
    check_session: bool = True

    def __post_init__(self) -> None:
        if self.tick_fen <= 0 or self.lot_quantity <= 0:
            raise ValueError("tick_fen and lot_quantity must be positive")
        if self.scale < 0:
            raise ValueError("scale must not be negative")
        if self.quantity_max is not None and self.quantity_max <= 0:
            raise ValueError("quantity_max must be positive")
        if self.prev_close_fen is not None and self.prev_close_fen <= 0:
            raise ValueError("prev_close_fen must be positive")
        if min(self.band_bps, self.taker_fee_bps, self.maker_fee_bps) < 0:
            raise ValueError("basis points must not be negative")
        if self.pick_levels_max <= 0:
            raise ValueError("pick_levels_max must be positive")

    @property
    def band(self) -> Band | None:
        if not self.check_band or self.prev_close_fen is None:
            return None
        return price_band(self.prev_close_fen, self.band_bps, self.tick_fen)

    @classmethod
    def unchecked(cls, mode: BookMode = BookMode.CONTINUOUS) -> BookConfig:
        """No band, tick, lot, session or self-trade checks and no fees: a bare price-time book."""
        return cls(
            mode=mode,
            stp=SelfTradePrevention.OFF,
            check_band=False,
            check_tick=False,
            check_lot=False,
            check_session=False,
        )

    @classmethod
    def national_listed(cls, prev_close_fen: int, is_working_day: WorkingDayTest | None, scale: int = 0) -> BookConfig:
        """The national carbon market's listed agreement (挂牌协议) rules: ±10%, under 100,000 display units."""
        return cls(
            mode=BookMode.LISTED,
            prev_close_fen=prev_close_fen,
            scale=scale,
            quantity_max=99_999 * 10**scale,
            is_working_day=is_working_day,
        )
