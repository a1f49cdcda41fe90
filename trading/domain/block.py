"""Block trades (大宗协议): large trades negotiated between two members and confirmed by both.

National carbon market rules: at least 100,000 units, price within ±30% of the previous close (band edges
rounded inward to the tick), during the block session 13:00–15:00 on working days. One member submits the
agreed terms (the submission is its confirmation); the named counterparty confirms; only then is the trade
executable and settled delivery-versus-payment by the service. Block trades do not set the closing price.

Checks report every broken rule at once as `BlockViolation` values with stable codes (the API's problem
type suffixes); a trade is re-checked at confirmation, because the session may have ended meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from core import figures
from trading.domain.bands import price_band
from trading.domain.money import notional_fen
from trading.domain.sessions import BLOCK_SESSIONS, Sessions, WorkingDayTest, is_aware


@dataclass(frozen=True, slots=True)
class BlockRules:
    """`quantity_min` and `lot_quantity` in base units; the national minimum is 100,000 display units, so
    `100_000 * 10**scale` (`for_scale`)."""

    quantity_min: int = 100_000
    scale: int = 0
    band_bps: int = 3000
    tick_fen: int = 1
    lot_quantity: int = 1
    sessions: Sessions = BLOCK_SESSIONS
    check_session: bool = True


class BlockStatus(StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class BlockViolation:
    code: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class BlockTrade:
    """Agreed terms between a buyer and a seller member, with each side's confirmation."""

    trade_id: int
    buyer: str
    seller: str
    price_fen: int
    quantity: int
    buyer_confirmed: bool = False
    seller_confirmed: bool = False

    @property
    def status(self) -> BlockStatus:
        if self.buyer_confirmed and self.seller_confirmed:
            return BlockStatus.CONFIRMED
        return BlockStatus.PROPOSED

    def notional_fen(self, scale: int) -> int:
        """The trade's amount: `money.notional_fen` (the price is per display unit, the quantity in base units)."""
        return notional_fen(self.price_fen, self.quantity, scale)


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    """The trade after the step (None when a proposal is refused) and every violation found."""

    trade: BlockTrade | None
    violations: tuple[BlockViolation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def validate_block_trade(
    buyer: str,
    seller: str,
    price_fen: int,
    quantity: int,
    *,
    prev_close_fen: int,
    now: datetime,
    rules: BlockRules | None = None,
    is_working_day: WorkingDayTest | None = None,
) -> tuple[BlockViolation, ...]:
    """Every rule the terms break; empty when the block trade may proceed."""
    rules = BlockRules() if rules is None else rules
    found: list[BlockViolation] = []
    if buyer == seller:
        found.append(BlockViolation("same-member", "seller", "Buyer and seller must be two different members."))
    if quantity <= 0:
        found.append(BlockViolation("invalid-quantity", "quantity", "Quantity must be a positive integer."))
    else:
        if quantity < rules.quantity_min:
            found.append(
                BlockViolation(
                    "below-block-minimum",
                    "quantity",
                    f"A block trade needs at least {figures.quantity(rules.quantity_min, rules.scale)} units; "
                    "trade smaller volumes on the book.",
                )
            )
        if quantity % rules.lot_quantity:
            found.append(BlockViolation("off-lot", "quantity", "Quantity must be a whole number of lots."))
    if price_fen <= 0:
        found.append(BlockViolation("invalid-price", "price_fen", "Price must be a positive amount in fen."))
    else:
        if price_fen % rules.tick_fen:
            found.append(BlockViolation("off-tick", "price_fen", "Price must be a whole multiple of the tick."))
        band = price_band(prev_close_fen, rules.band_bps, rules.tick_fen)
        if not band.contains(price_fen):
            found.append(
                BlockViolation(
                    "outside-band",
                    "price_fen",
                    f"Price must lie between {band.lower_fen} and {band.upper_fen} fen "
                    f"(±{figures.percent(rules.band_bps)} of the previous close).",
                )
            )
    if rules.check_session:
        if not is_aware(now):
            found.append(BlockViolation("invalid-time", "now", "The time must be timezone-aware."))
        elif not rules.sessions.is_open(now, is_working_day):
            found.append(
                BlockViolation("market-closed", "now", "Block trades are accepted 13:00–15:00 on working days.")
            )
    return tuple(found)


def propose_block_trade(
    trade: BlockTrade,
    proposer: str,
    *,
    prev_close_fen: int,
    now: datetime,
    rules: BlockRules | None = None,
    is_working_day: WorkingDayTest | None = None,
) -> BlockOutcome:
    """Submit agreed terms; the proposer's own side counts as confirmed."""
    found = list(
        validate_block_trade(
            trade.buyer,
            trade.seller,
            trade.price_fen,
            trade.quantity,
            prev_close_fen=prev_close_fen,
            now=now,
            rules=rules,
            is_working_day=is_working_day,
        )
    )
    if proposer not in (trade.buyer, trade.seller):
        found.append(BlockViolation("not-a-party", "proposer", "Only the buyer or the seller may propose."))
    if found:
        return BlockOutcome(None, tuple(found))
    proposed = replace(trade, buyer_confirmed=proposer == trade.buyer, seller_confirmed=proposer == trade.seller)
    return BlockOutcome(proposed, ())


def confirm_block_trade(
    trade: BlockTrade,
    member: str,
    *,
    prev_close_fen: int,
    now: datetime,
    rules: BlockRules | None = None,
    is_working_day: WorkingDayTest | None = None,
) -> BlockOutcome:
    """The counterparty's confirmation; on success the trade is CONFIRMED and ready for settlement."""
    found = list(
        validate_block_trade(
            trade.buyer,
            trade.seller,
            trade.price_fen,
            trade.quantity,
            prev_close_fen=prev_close_fen,
            now=now,
            rules=rules,
            is_working_day=is_working_day,
        )
    )
    if member == trade.buyer:
        already = trade.buyer_confirmed
    elif member == trade.seller:
        already = trade.seller_confirmed
    else:
        found.append(BlockViolation("not-a-party", "member", "Only the named counterparty may confirm."))
        already = False
    if already:
        found.append(BlockViolation("already-confirmed", "member", "This member has already confirmed."))
    if found:
        return BlockOutcome(trade, tuple(found))
    if member == trade.buyer:
        return BlockOutcome(replace(trade, buyer_confirmed=True), ())
    return BlockOutcome(replace(trade, seller_confirmed=True), ())
