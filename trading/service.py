"""Trading units of work: markets, orders through the sequenced books, block trades, auctions, fund accounts,
market data and the daily close. One public method is one transaction (through `Database.run`).

How an order goes (`place_order`), all in one unit of work under the book's lock:
1. the caller's units (sell) or funds (buy: remaining × unit cost) are held on the ledger, after the T+1 check;
2. the pure book runs the command; a rejection raises its problem and rolls everything back;
3. the accepted command is journalled under the book's next sequence number;
4. every trade settles delivery versus payment through clearing: each side's hold is posted for what the
   trade needs (the rest released, exactly once), what stays open is held again, clearing pays out units,
   yuan and fees; cancelled remainders release their holds.
The commit acknowledges the command; if anything fails after the book changed, the in-memory book is dropped
and rebuilt from the journal, so memory never runs ahead of the database.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import Clock, business_date
from core.db import Database, UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from core.identity import Identity, Role
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer, Organisation
from core.quantity import INT64_MAX, format_amount, parse_money_fen, parse_quantity
from core.workdays import is_working_day as calendar_working_day
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument, RegistryAccount
from registry.service import RegistryService
from trading import clearing
from trading import schemas as s
from trading.domain.auction import (
    AuctionStatus,
    OneWayAuctionSpec,
    Pricing,
    PrimaryAuctionSpec,
    clear_auction,
)
from trading.domain.auction import Bid as AuctionBid
from trading.domain.bands import is_on_lot, is_on_tick, price_band, round_half_up_to_tick
from trading.domain.block import BlockRules, confirm_block_trade, propose_block_trade
from trading.domain.block import BlockTrade as BlockTerms
from trading.domain.book import BookConfig, BookSnapshot
from trading.domain.commands import Cancel, Command, Pick, Place
from trading.domain.journal import replay
from trading.domain.marketdata import CLOSE_SETTING_VENUES, TradePrint, Venue, daily_summary
from trading.domain.model import MESSAGES, BookMode, Code, OrderKind, Result, Side, Status
from trading.domain.money import base_per_display, buy_hold_fen, fee_fen, notional_fen
from trading.domain.sessions import BLOCK_SESSIONS, LISTED_SESSIONS
from trading.models import Auction, Bid, BlockTrade, BookDay, FundMovement, Market, Order, Trade
from trading.sequencer import Sequencer, StaleBook, book_config, read_journal

T = TypeVar("T")

SYSTEM_ACTOR = "system:scheduler"
STALE_RETRIES = 3
# National carbon market rules, in display units (t, tce, certificates): listed-agreement orders under 100,000,
# block trades and one-way auctions from 100,000. A market stores them in base units (× 10**scale).
DEFAULT_QUANTITY_MAX_DISPLAY = 99_999
BLOCK_QUANTITY_MIN_DISPLAY = 100_000
TRADER_ROLES = (Role.EMITTER, Role.MEMBER)
# Problem slug and field for each rejection code of the matcher.
_CODE_PROBLEMS: dict[Code, tuple[str, str | None]] = {
    Code.DUPLICATE_ORDER_ID: ("duplicate", None),
    Code.INVALID_QUANTITY: ("quantity-invalid", "quantity"),
    Code.INVALID_PRICE: ("invalid-price", "price"),
    Code.OFF_TICK: ("off-tick", "price"),
    Code.OFF_LOT: ("off-lot", "quantity"),
    Code.QUANTITY_ABOVE_MAX: ("quantity-above-max", "quantity"),
    Code.OUTSIDE_BAND: ("outside-band", "price"),
    Code.MARKET_CLOSED: ("market-closed", None),
    Code.INVALID_TIME: ("invalid-input", "at"),
    Code.WRONG_MODE: ("wrong-mode", "kind"),
    Code.WOULD_CROSS: ("would-cross", "price"),
    Code.UNKNOWN_ORDER: ("not-found", "order_id"),
    Code.ORDER_FILLED: ("order-filled", None),
    Code.ORDER_CANCELLED: ("order-cancelled", None),
    Code.NOT_OWNER: ("not-found", "order_id"),
    Code.PICK_WRONG_SIDE: ("pick-wrong-side", "side"),
    Code.PICK_OUTSIDE_BEST_LEVELS: ("pick-outside-best-levels", "listing_id"),
    Code.PICK_QUANTITY_ABOVE_LISTING: ("pick-quantity-above-listing", "quantity"),
    Code.SELF_TRADE: ("self-trade", "listing_id"),
}
_BLOCK_PROBLEMS: dict[str, tuple[str, int | None]] = {
    "same-member": ("accounts-must-differ", None),
    "invalid-quantity": ("quantity-invalid", None),
    "below-block-minimum": ("below-block-minimum", None),
    "off-lot": ("off-lot", None),
    "invalid-price": ("invalid-price", None),
    "off-tick": ("off-tick", None),
    "outside-band": ("outside-band", None),
    "market-closed": ("market-closed", None),
    "invalid-time": ("invalid-input", None),
    "not-a-party": ("not-found", None),
    "already-confirmed": ("invalid-state", None),
}
_VENUE_OF_MODE = {BookMode.LISTED.value: Venue.LISTED.value, BookMode.CONTINUOUS.value: Venue.CONTINUOUS.value}


@dataclass(frozen=True)
class MarketInfo:
    """What never changes about a market: cached per process after the first read."""

    market_id: int
    instrument_id: int
    asset_id: int
    kind: str
    scale: int


def _scale(kind: str) -> int:
    return KIND_RULES[Kind(kind)].scale


def _qty(base: int, kind: str) -> str:
    return format_amount(base, _scale(kind))


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else clearing.yuan(fen)


def _book_error(code: Code, row: BookDay | None = None, *, pick: bool = False) -> AppError:
    slug, field_name = _CODE_PROBLEMS[code]
    if pick and code in (Code.UNKNOWN_ORDER, Code.ORDER_FILLED, Code.ORDER_CANCELLED, Code.NOT_OWNER):
        field_name = "listing_id"
    detail = MESSAGES[code]
    extra: dict[str, Any] = {}
    if code is Code.OUTSIDE_BAND and row is not None:
        band = price_band(row.prev_close_fen, row.band_bps, row.tick_fen)
        detail = (
            f"Today's band is {clearing.yuan(band.lower_fen)} to {clearing.yuan(band.upper_fen)} yuan "
            f"(±{row.band_bps / 100:g}% of the previous close {clearing.yuan(row.prev_close_fen)} yuan)."
        )
        extra = {"band_lower": clearing.yuan(band.lower_fen), "band_upper": clearing.yuan(band.upper_fen)}
    if slug == "not-found":
        return AppError("not-found", "No order with this id is visible to you.", field=field_name)
    return AppError(slug, detail, field=field_name, extra=extra)


def _entry_check(
    config: BookConfig, kind: OrderKind, price_fen: int | None, quantity: int, *, pick: bool
) -> Code | None:
    """The book's static entry checks (mode, tick, band, lot, maximum), run before anything is held.

    The book runs them again and stays the authority; running them first makes a malformed order a 422 even when
    the caller could not have covered it anyway (which would otherwise answer 409 from the hold).
    """
    listed = config.mode is BookMode.LISTED
    if not pick:
        if listed and kind is not OrderKind.LIMIT:
            return Code.WRONG_MODE
        if price_fen is not None:
            if config.check_tick and not is_on_tick(price_fen, config.tick_fen):
                return Code.OFF_TICK
            band = config.band
            if band is not None and not band.contains(price_fen):
                return Code.OUTSIDE_BAND
    if config.check_lot and not is_on_lot(quantity, config.lot_quantity):
        return Code.OFF_LOT
    if config.quantity_max is not None and quantity > config.quantity_max:
        return Code.QUANTITY_ABOVE_MAX
    return None


def _raise_failures(failures: list[checks.Failure]) -> None:
    if failures:
        slug, field_name, message = failures[0]
        raise AppError(slug, message, field=field_name)


@dataclass
class TradingService:
    db: Database
    clock: Clock
    registry: RegistryService
    sequencer: Sequencer = field(default_factory=Sequencer)
    is_working_day: Callable[[dt.date], bool] = calendar_working_day
    _markets: dict[int, MarketInfo] = field(default_factory=dict)
    _book_ids: dict[tuple[int, dt.date], int] = field(default_factory=dict)
    accounts: clearing.Accounts = field(default_factory=clearing.Accounts)

    # ------------------------------------------------------------------ the sequencer's unit of work
    async def _exclusive(self, book_id: int, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run `work` as one unit of work holding the book's lock.

        A failure after the book accepted a command leaves the in-memory book ahead of the database, so the
        book is dropped and the next command replays the journal. A stale book (another process appended to
        the journal) is replayed and the command retried.
        """
        seq = self.sequencer
        for _ in range(STALE_RETRIES):
            async with seq.lock(book_id):
                try:
                    result = await self.db.run(work)
                except StaleBook:
                    continue
                except BaseException:
                    seq.discard_if_dirty(book_id)
                    raise
                seq.committed(book_id)
                return result
        raise ServiceUnavailable("Another process is writing this order book; retry shortly.")

    async def _market_info(self, instrument_id: int) -> MarketInfo:
        info = self._markets.get(instrument_id)
        if info is not None:
            return info

        async def work(uow: UnitOfWork) -> MarketInfo:
            market = await self._market(uow.session, instrument_id)
            inst = await self.registry._instrument(uow.session, instrument_id)
            return MarketInfo(market.id or 0, instrument_id, inst.asset_id, market.kind, _scale(market.kind))

        info = await self.db.read(work)
        self._markets[instrument_id] = info
        return info

    async def _market(self, ses: AsyncSession, instrument_id: int) -> Market:
        market = (await ses.execute(select(Market).where(Market.instrument_id == instrument_id))).scalar_one_or_none()
        if market is None:
            raise AppError("not-found", "No market trades this instrument.", field="instrument_id")
        return market

    async def _book_id(self, info: MarketInfo, day: dt.date, now: dt.datetime) -> int:
        """The id of the market's book for `day`, opened (with yesterday's close as its band) on first use."""
        key = (info.market_id, day)
        book_id = self._book_ids.get(key)
        if book_id is not None:
            return book_id
        # A day that was never closed (the scheduler was down) is closed first: its close is today's band.
        await self._close_stale_days(info, day, now)

        async def work(uow: UnitOfWork) -> int:
            row = await self._ensure_book_row(uow.session, info.market_id, day, now)
            return row.id or 0

        book_id = await self.db.run(work)
        self._book_ids[key] = book_id
        return book_id

    async def _ensure_book_row(self, ses: AsyncSession, market_id: int, day: dt.date, now: dt.datetime) -> BookDay:
        stmt = select(BookDay).where(BookDay.market_id == market_id, BookDay.trade_date == day)
        row = (await ses.execute(stmt)).scalar_one_or_none()
        if row is not None:
            return row
        market = await ses.get(Market, market_id)
        assert market is not None
        row = BookDay(
            market_id=market_id,
            trade_date=day,
            mode=market.mode,
            prev_close_fen=market.prev_close_fen,
            band_bps=market.band_bps,
            tick_fen=market.tick_fen,
            scale=_scale(market.kind),
            lot_quantity=market.lot_quantity,
            quantity_max=market.quantity_max,
            taker_fee_bps=market.taker_fee_bps,
            maker_fee_bps=market.maker_fee_bps,
            stp=market.stp,
            created_at=now,
        )
        try:
            async with ses.begin_nested():
                ses.add(row)
                await ses.flush()
        except IntegrityError:
            row = (await ses.execute(stmt)).scalar_one()
        return row

    async def _close_stale_days(self, info: MarketInfo, day: dt.date, now: dt.datetime) -> None:
        async def work(uow: UnitOfWork) -> list[dt.date]:
            rows = await uow.session.execute(
                select(BookDay.trade_date)
                .where(BookDay.market_id == info.market_id, BookDay.status == "open", BookDay.trade_date < day)
                .order_by(BookDay.trade_date)  # type: ignore[arg-type]
            )
            return list(rows.scalars())

        for stale in await self.db.read(work):
            await self._close_market_day(info, stale, now, SYSTEM_ACTOR)

    # ------------------------------------------------------------------ markets
    async def create_market(self, who: Identity, req: s.CreateMarket, request_key: str | None) -> s.MarketOut:
        reference_fen = parse_money_fen(req.reference_price, field="reference_price")

        async def work(uow: UnitOfWork) -> s.MarketOut:
            ses = uow.session
            inst = await self.registry._instrument(ses, req.instrument_id)
            kind = Kind(inst.kind)
            if KIND_RULES[kind].issuer_role != who.role.value:
                raise Forbidden(f"Only the {KIND_RULES[kind].issuer_role} opens markets for {kind.value}.")
            if not inst.tradable:
                raise AppError("not-tradable", "These units may only be claimed, not traded.", field="instrument_id")
            if (await ses.execute(select(Market.id).where(Market.instrument_id == inst.id))).first():
                raise Conflict("duplicate", "A market for this instrument exists.", field="instrument_id")
            scale = _scale(inst.kind)
            tick_fen = parse_money_fen(req.tick, field="tick")
            lot_quantity = 1 if req.lot is None else parse_quantity(req.lot, scale=scale, field="lot")
            if tick_fen > reference_fen:
                raise InvalidInput("tick", "The tick must not exceed the reference price.")
            per = base_per_display(scale)
            quantity_max = (
                DEFAULT_QUANTITY_MAX_DISPLAY * per
                if req.quantity_max is None
                else parse_quantity(req.quantity_max, scale=scale, field="quantity_max")
            )
            market = Market(
                instrument_id=inst.id or 0,
                kind=inst.kind,
                mode=req.mode,
                prev_close_fen=reference_fen,
                band_bps=req.band_bps,
                block_band_bps=req.block_band_bps,
                tick_fen=tick_fen,
                lot_quantity=lot_quantity,
                quantity_max=quantity_max,
                block_quantity_min=BLOCK_QUANTITY_MIN_DISPLAY * per,
                taker_fee_bps=req.taker_fee_bps,
                maker_fee_bps=req.maker_fee_bps,
                stp=req.stp,
                created_by=who.principal_id,
                created_at=self.clock.now(),
            )
            ses.add(market)
            await ses.flush()
            uow.audit(
                who.actor,
                "market.create",
                "market",
                str(market.id),
                {"instrument": inst.code, "mode": req.mode, "reference_price_fen": reference_fen},
            )
            return self._market_out(market, inst)

        return await self.db.run(work)

    async def list_markets(self) -> list[s.MarketOut]:
        async def work(uow: UnitOfWork) -> list[s.MarketOut]:
            ses = uow.session
            markets = (await ses.execute(select(Market).order_by(Market.id))).scalars().all()  # type: ignore[arg-type]
            return [self._market_out(m, await self.registry._instrument(ses, m.instrument_id)) for m in markets]

        return await self.db.read(work)

    def _market_out(self, m: Market, inst: Instrument) -> s.MarketOut:
        band = price_band(m.prev_close_fen, m.band_bps, m.tick_fen)
        block = price_band(m.prev_close_fen, m.block_band_bps, m.tick_fen)
        rule = KIND_RULES[Kind(m.kind)]
        return s.MarketOut(
            id=m.id or 0,
            instrument_id=m.instrument_id,
            instrument_code=inst.code,
            kind=m.kind,
            mode=m.mode,
            status=m.status,
            display_unit=rule.display_unit,
            prev_close=clearing.yuan(m.prev_close_fen),
            prev_close_fen=m.prev_close_fen,
            last_close_date=m.last_close_date,
            band_lower=clearing.yuan(band.lower_fen),
            band_upper=clearing.yuan(band.upper_fen),
            band_lower_fen=band.lower_fen,
            band_upper_fen=band.upper_fen,
            block_band_lower=clearing.yuan(block.lower_fen),
            block_band_upper=clearing.yuan(block.upper_fen),
            band_bps=m.band_bps,
            block_band_bps=m.block_band_bps,
            tick=clearing.yuan(m.tick_fen),
            lot=_qty(m.lot_quantity, m.kind),
            quantity_max=None if m.quantity_max is None else _qty(m.quantity_max, m.kind),
            block_quantity_min=_qty(m.block_quantity_min, m.kind),
            taker_fee_bps=m.taker_fee_bps,
            maker_fee_bps=m.maker_fee_bps,
            stp=m.stp,
        )

    # ------------------------------------------------------------------ accounts and holds (inside a unit of work)
    async def _trading_account(
        self, ses: AsyncSession, who: Identity, account_id: int, inst: Instrument, *, buying: bool, now: dt.datetime
    ) -> RegistryAccount:
        """The caller's own registry account, fit to deliver (sell) or receive (buy) these units."""
        acc = await self.registry._own_account(ses, who, account_id, "account_id")
        facts = checks.AccountFacts(id=acc.id or 0, type=acc.type, status=acc.status)
        failures = checks.check_status(facts, "account_id", acquiring=buying)
        kind = Kind(inst.kind)
        if buying and acc.type in checks.MAY_HOLD and kind not in checks.MAY_HOLD[acc.type]:
            failures.append(("account-may-not-hold", "account_id", f"A {acc.type} account may not hold {kind.value}."))
        if not inst.tradable:
            failures.append(("not-tradable", "instrument_id", "These units may only be claimed, not traded."))
        failures += checks.check_not_expired(inst.valid_until, business_date(now))
        _raise_failures(failures)
        return acc

    async def _units_ledger(self, ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> int:
        return await self.accounts.units(ses, asset_id=inst.asset_id, registry_account_id=acc.id or 0, role=acc.type)

    async def _check_sellable(
        self, ses: AsyncSession, la: int, acc: RegistryAccount, inst: Instrument, quantity: int, day: dt.date
    ) -> None:
        """No short selling, and T+1: units bought today are not available for sale until the next trading day."""
        fresh = (
            await ses.execute(
                select(LedgerAccount).where(LedgerAccount.id == la).execution_options(populate_existing=True)
            )
        ).scalar_one()
        available = ledger.available(fresh)
        bought_today = int(
            (
                await ses.execute(
                    select(func.coalesce(func.sum(Trade.quantity), 0)).where(
                        Trade.buyer_account_id == acc.id,
                        Trade.instrument_id == inst.id,
                        Trade.trade_date == day,
                    )
                )
            ).scalar_one()
        )
        sellable = max(available - bought_today, 0)
        if quantity <= sellable:
            return
        if quantity <= available:
            raise Conflict(
                "t-plus-one",
                f"{_qty(sellable, inst.kind)} units are sellable today; "
                f"{_qty(min(bought_today, available), inst.kind)} bought today are sellable next trading day.",
                field="quantity",
                extra={"sellable": _qty(sellable, inst.kind)},
            )
        raise Conflict(
            "insufficient-available",
            f"Only {_qty(available, inst.kind)} units are available; {_qty(quantity, inst.kind)} were asked for.",
            field="quantity",
            extra={"available": _qty(available, inst.kind), "requested": _qty(quantity, inst.kind)},
        )

    async def _hold(
        self,
        ses: AsyncSession,
        *,
        prefix: str,
        count: int,
        from_account_id: int,
        clearing_id: int,
        asset_id: int,
        amount: int,
        now: dt.datetime,
        ref: str,
        funds: bool,
        field_name: str = "quantity",
    ) -> int:
        if amount > INT64_MAX:
            raise AppError("amount-overflow", "The amount would overflow a 64-bit balance.", field=field_name)
        return await clearing.hold(
            ses,
            client_id=f"{prefix}:h{count}",
            from_account_id=from_account_id,
            clearing_id=clearing_id,
            asset_id=asset_id,
            amount=amount,
            code="trade-hold",
            now=now,
            ref=ref,
            field=field_name,
            what="funds" if funds else "units",
        )

    # ------------------------------------------------------------------ orders
    async def place_order(self, who: Identity, req: s.PlaceOrder, request_key: str | None) -> s.OrderOut:
        info = await self._market_info(req.instrument_id)
        side = Side(req.side)
        kind = OrderKind(req.kind)
        quantity = parse_quantity(req.quantity, scale=info.scale)
        price_fen = None if req.price is None else parse_money_fen(req.price, field="price")
        pick = req.listing_id is not None
        if pick:
            if price_fen is not None:
                raise InvalidInput("price", "A pick trades at the listing's price; omit the price.")
            if kind is not OrderKind.LIMIT:
                raise InvalidInput("kind", "A pick (摘牌) is a plain order; omit the kind.")
        elif kind is OrderKind.MARKET and price_fen is not None:
            raise AppError("invalid-price", "A market order carries no price.", field="price")
        elif kind is not OrderKind.MARKET and price_fen is None:
            raise AppError("invalid-price", "A limit, IOC or FOK order needs a price in yuan.", field="price")
        now = self.clock.now()
        day = business_date(now)
        if not LISTED_SESSIONS.is_open(now, self.is_working_day):
            raise AppError(
                "market-closed", "Orders are accepted 09:30–11:30 and 13:00–15:00 on trading days (Asia/Shanghai)."
            )
        book_id = await self._book_id(info, day, now)
        owner = str(who.organisation_id)

        async def work(uow: UnitOfWork) -> s.OrderOut:
            ses = uow.session
            if request_key is not None:
                prior = (await ses.execute(select(Order).where(Order.request_key == request_key))).scalar_one_or_none()
                if prior is not None:
                    return await self._order_out(ses, prior, info.kind)
            row = await ses.get(BookDay, book_id)
            assert row is not None
            if row.status != "open":
                raise AppError("market-closed", "Today's trading in this instrument is closed.")
            inst = await self.registry._instrument(ses, info.instrument_id)
            acc = await self._trading_account(ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
            state = await self.sequencer.load(ses, row)
            early = _entry_check(state.book.config, kind, price_fen, quantity, pick=pick)
            if early is not None:
                raise _book_error(early, row, pick=pick)
            ids = await self.accounts.ids_for(ses, inst.asset_id)
            order = Order(
                book_id=book_id,
                market_id=info.market_id,
                instrument_id=info.instrument_id,
                organisation_id=who.organisation_id,
                account_id=acc.id or 0,
                principal_id=who.principal_id,
                side=side.value,
                kind="pick" if pick else kind.value,
                price_fen=price_fen,
                quantity=quantity,
                status="new",
                listing_id=req.listing_id,
                request_key=request_key,
                trade_date=day,
                created_at=now,
                updated_at=now,
            )
            ses.add(order)
            await ses.flush()
            oid = order.id or 0
            command: Command
            if pick:
                assert req.listing_id is not None
                command = Pick(oid, side, req.listing_id, quantity, owner, now)
                listing = state.book.order(req.listing_id)
                cost_price = listing.price_fen if listing is not None else None
                order.price_fen = cost_price
            else:
                command = Place(oid, side, kind, price_fen, quantity, owner, now)
                band = state.book.config.band
                cost_price = price_fen if price_fen is not None else (band.upper_fen if band is not None else None)
            # Hold first: a refusal here leaves the book untouched. A pick of a listing that is not there holds
            # nothing; the book refuses it next.
            if side is Side.SELL:
                la = await self._units_ledger(ses, acc, inst)
                await self._check_sellable(ses, la, acc, inst, quantity, day)
                order.hold_count = 1
                order.held_amount = quantity
                order.hold_transfer_id = await self._hold(
                    ses,
                    prefix=f"ord:{oid}",
                    count=1,
                    from_account_id=la,
                    clearing_id=ids.units_clearing_id,
                    asset_id=ids.units_asset_id,
                    amount=quantity,
                    now=now,
                    ref=f"order:{oid}",
                    funds=False,
                )
            elif cost_price is not None:
                fund = await self.accounts.fund(ses, who.organisation_id)
                order.hold_price_fen = cost_price
                order.hold_fee_bps = max(row.taker_fee_bps, row.maker_fee_bps)
                order.hold_count = 1
                order.held_amount = buy_hold_fen(cost_price, quantity, row.scale, order.hold_fee_bps)
                order.hold_transfer_id = await self._hold(
                    ses,
                    prefix=f"ord:{oid}",
                    count=1,
                    from_account_id=fund,
                    clearing_id=ids.cny_clearing_id,
                    asset_id=ids.cny_asset_id,
                    amount=order.held_amount,
                    now=now,
                    ref=f"order:{oid}",
                    funds=True,
                )
            result = self.sequencer.apply(state, command)
            if not result.ok:
                raise _book_error(result.code, row, pick=pick)
            order.journal_seq = await self.sequencer.append(ses, state, command, now)
            fills = await self._settle(ses, row, inst, ids, order, result, now)
            uow.audit(
                who.actor,
                "order.place",
                "order",
                str(oid),
                {
                    "instrument": inst.code,
                    "side": side.value,
                    "kind": order.kind,
                    "price_fen": order.price_fen,
                    "quantity": quantity,
                    "status": order.status,
                    "filled": order.filled_quantity,
                    "seq": order.journal_seq,
                },
            )
            return self._order_view(order, info.kind, fills)

        return await self._exclusive(book_id, work)

    async def _settle(
        self,
        ses: AsyncSession,
        row: BookDay,
        inst: Instrument,
        ids: clearing.Ids,
        taker: Order,
        result: Result,
        now: dt.datetime,
    ) -> list[Trade]:
        """Settle one accepted command's outcome: trades DVP, holds posted, re-held or released."""
        taker.filled_quantity = result.filled_quantity
        taker.cancelled_quantity = result.cancelled_quantity
        taker.status = result.status.value
        taker.cancel_reason = None if result.cancel_reason is None else result.cancel_reason.value
        taker.updated_at = now
        trades = result.trades
        taker_sells = taker.side == Side.SELL.value
        if trades:
            units = sum(t.quantity for t in trades)
            funds = sum(t.notional_fen + t.taker_fee_fen for t in trades)
            await self._collect_and_rehold(
                ses, ids, taker, units if taker_sells else funds, result.resting_quantity, row.scale, now
            )
        elif result.status is not Status.RESTING:
            await self._release(ses, taker, now)

        makers: dict[int, Order] = {}
        touched = [t.maker_order_id for t in trades] + [mc.order_id for mc in result.maker_cancels]
        if touched:
            rows = await ses.execute(select(Order).where(Order.id.in_(touched)))  # type: ignore[union-attr]
            makers = {o.id or 0: o for o in rows.scalars()}
        venue = _VENUE_OF_MODE[row.mode]
        out: list[Trade] = []
        for t in trades:
            maker = makers[t.maker_order_id]
            buy, sell = (maker, taker) if taker_sells else (taker, maker)
            trade = Trade(
                market_id=row.market_id,
                instrument_id=inst.id or 0,
                venue=venue,
                trade_date=row.trade_date,
                book_id=row.id,
                book_seq=t.seq,
                price_fen=t.price_fen,
                quantity=t.quantity,
                notional_fen=t.notional_fen,
                buyer_organisation_id=buy.organisation_id,
                seller_organisation_id=sell.organisation_id,
                buyer_account_id=buy.account_id,
                seller_account_id=sell.account_id,
                buy_order_id=buy.id,
                sell_order_id=sell.id,
                taker_side=t.taker_side.value,
                buyer_fee_fen=t.maker_fee_fen if taker_sells else t.taker_fee_fen,
                seller_fee_fen=t.taker_fee_fen if taker_sells else t.maker_fee_fen,
                at=t.at,
            )
            ses.add(trade)
            await ses.flush()
            out.append(trade)
            maker.filled_quantity += t.quantity
            maker.updated_at = now
            maker_remaining = maker.quantity - maker.filled_quantity - maker.cancelled_quantity
            if maker_remaining == 0:
                maker.status = Status.FILLED.value
            contribution = t.quantity if not taker_sells else t.notional_fen + t.maker_fee_fen
            await self._collect_and_rehold(ses, ids, maker, contribution, maker_remaining, row.scale, now)
            await self._deliver(ses, ids, inst, trade, now)
        for mc in result.maker_cancels:
            maker = makers[mc.order_id]
            maker.cancelled_quantity += mc.quantity
            maker.status = Status.CANCELLED.value
            maker.cancel_reason = "self-trade"
            maker.updated_at = now
            await self._release(ses, maker, now)
        await ses.flush()
        return out

    async def _collect_and_rehold(
        self,
        ses: AsyncSession,
        ids: clearing.Ids,
        order: Order,
        amount: int,
        remaining: int,
        scale: int,
        now: dt.datetime,
    ) -> None:
        """Post `amount` of the order's hold into clearing; hold what its remaining quantity needs again."""
        assert order.hold_transfer_id is not None
        oid = order.id or 0
        hold = await ses.get(LedgerTransfer, order.hold_transfer_id)
        assert hold is not None
        await clearing.collect(
            ses,
            hold_id=order.hold_transfer_id,
            amount=amount,
            client_id=f"ord:{oid}:h{order.hold_count}:r",
            now=now,
            code="trade",
        )
        order.hold_transfer_id = None
        order.held_amount = 0
        if remaining <= 0:
            return
        sells = order.side == Side.SELL.value
        held = remaining if sells else buy_hold_fen(order.hold_price_fen or 0, remaining, scale, order.hold_fee_bps)
        order.hold_count += 1
        order.held_amount = held
        order.hold_transfer_id = await self._hold(
            ses,
            prefix=f"ord:{oid}",
            count=order.hold_count,
            from_account_id=hold.debit_account_id,
            clearing_id=ids.units_clearing_id if sells else ids.cny_clearing_id,
            asset_id=ids.units_asset_id if sells else ids.cny_asset_id,
            amount=held,
            now=now,
            ref=f"order:{oid}",
            funds=not sells,
        )

    async def _release(self, ses: AsyncSession, order: Order, now: dt.datetime) -> None:
        """Void the order's hold (cancel, expiry, unfilled remainder). The ledger refuses a second resolution."""
        if order.hold_transfer_id is None:
            return
        await clearing.collect(
            ses,
            hold_id=order.hold_transfer_id,
            amount=0,
            client_id=f"ord:{order.id}:h{order.hold_count}:r",
            now=now,
            code="trade-release",
        )
        order.hold_transfer_id = None
        order.held_amount = 0

    async def _deliver(
        self, ses: AsyncSession, ids: clearing.Ids, inst: Instrument, trade: Trade, now: dt.datetime
    ) -> None:
        buyer_acc = await ses.get(RegistryAccount, trade.buyer_account_id)
        assert buyer_acc is not None
        buyer_units = await self._units_ledger(ses, buyer_acc, inst)
        seller_fund = await self.accounts.fund(ses, trade.seller_organisation_id)
        await clearing.deliver(
            ses,
            ids,
            clearing.Delivery(
                trade_id=trade.id or 0,
                quantity=trade.quantity,
                notional_fen=trade.notional_fen,
                buyer_fee_fen=trade.buyer_fee_fen,
                seller_fee_fen=trade.seller_fee_fen,
                buyer_units_account_id=buyer_units,
                seller_fund_account_id=seller_fund,
            ),
            now,
        )

    async def cancel_order(self, who: Identity, order_id: int) -> s.OrderOut:
        async def locate(uow: UnitOfWork) -> tuple[int, str]:
            order = await self._visible_order(uow.session, who, order_id)
            market = await uow.session.get(Market, order.market_id)
            assert market is not None
            return order.book_id, market.kind

        book_id, kind = await self.db.read(locate)
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.OrderOut:
            ses = uow.session
            order = (
                await ses.execute(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
            ).scalar_one()
            if order.organisation_id != who.organisation_id:
                raise NotFound("order", field="order_id")
            if order.status == Status.FILLED.value:
                raise _book_error(Code.ORDER_FILLED)
            if order.status == Status.CANCELLED.value:
                raise _book_error(Code.ORDER_CANCELLED)
            row = await ses.get(BookDay, book_id)
            assert row is not None
            state = await self.sequencer.load(ses, row)
            command = Cancel(order_id, now, str(who.organisation_id))
            result = self.sequencer.apply(state, command)
            if not result.ok:
                raise _book_error(result.code, row)
            order.journal_seq = await self.sequencer.append(ses, state, command, now)
            order.cancelled_quantity += result.cancelled_quantity
            order.status = Status.CANCELLED.value
            order.cancel_reason = "user"
            order.updated_at = now
            await self._release(ses, order, now)
            uow.audit(who.actor, "order.cancel", "order", str(order_id), {"released": result.cancelled_quantity})
            return await self._order_out(ses, order, kind)

        return await self._exclusive(book_id, work)

    async def _visible_order(self, ses: AsyncSession, who: Identity, order_id: int) -> Order:
        order = await ses.get(Order, order_id)
        if order is None or not (who.reads_all() or order.organisation_id == who.organisation_id):
            raise NotFound("order", field="order_id")
        return order

    async def get_order(self, who: Identity, order_id: int) -> s.OrderOut:
        async def work(uow: UnitOfWork) -> s.OrderOut:
            order = await self._visible_order(uow.session, who, order_id)
            market = await uow.session.get(Market, order.market_id)
            assert market is not None
            return await self._order_out(uow.session, order, market.kind)

        return await self.db.read(work)

    async def list_orders(
        self,
        who: Identity,
        *,
        instrument_id: int | None,
        status: str | None,
        limit: int,
        before_id: int | None,
    ) -> s.OrderPage:
        async def work(uow: UnitOfWork) -> s.OrderPage:
            ses = uow.session
            q = select(Order)
            if not who.reads_all():
                q = q.where(Order.organisation_id == who.organisation_id)
            if instrument_id is not None:
                q = q.where(Order.instrument_id == instrument_id)
            if status is not None:
                q = q.where(Order.status == status)
            if before_id is not None:
                q = q.where(Order.id < before_id)
            rows = (await ses.execute(q.order_by(Order.id.desc()).limit(limit + 1))).scalars().all()  # type: ignore[union-attr]
            page = list(rows[:limit])
            kinds = {m.id: m.kind for m in (await ses.execute(select(Market))).scalars()}
            fills = await self._fills(ses, [o.id or 0 for o in page])
            items = [self._order_view(o, kinds[o.market_id], fills.get(o.id or 0, [])) for o in page]
            return s.OrderPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

        return await self.db.read(work)

    async def _fills(self, ses: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[Trade]]:
        if not order_ids:
            return {}
        rows = await ses.execute(
            select(Trade)
            .where(or_(Trade.buy_order_id.in_(order_ids), Trade.sell_order_id.in_(order_ids)))  # type: ignore[union-attr]
            .order_by(Trade.id)  # type: ignore[arg-type]
        )
        out: dict[int, list[Trade]] = {}
        for t in rows.scalars():
            for oid in (t.buy_order_id, t.sell_order_id):
                if oid in order_ids:
                    out.setdefault(oid or 0, []).append(t)
        return out

    async def _order_out(self, ses: AsyncSession, order: Order, kind: str) -> s.OrderOut:
        fills = await self._fills(ses, [order.id or 0])
        return self._order_view(order, kind, fills.get(order.id or 0, []))

    def _order_view(self, o: Order, kind: str, fills: Sequence[Trade]) -> s.OrderOut:
        buys = o.side == Side.BUY.value
        return s.OrderOut(
            id=o.id or 0,
            instrument_id=o.instrument_id,
            account_id=o.account_id,
            side=o.side,
            kind=o.kind,
            price=_yuan(o.price_fen),
            price_fen=o.price_fen,
            quantity=_qty(o.quantity, kind),
            quantity_base=o.quantity,
            filled=_qty(o.filled_quantity, kind),
            filled_base=o.filled_quantity,
            remaining_base=o.quantity - o.filled_quantity - o.cancelled_quantity,
            cancelled_base=o.cancelled_quantity,
            status=o.status,
            cancel_reason=o.cancel_reason,
            listing_id=o.listing_id,
            held=clearing.yuan(o.held_amount) if buys else _qty(o.held_amount, kind),
            held_base=o.held_amount,
            trade_date=o.trade_date,
            journal_seq=o.journal_seq,
            fills=[
                s.FillOut(
                    trade_id=t.id or 0,
                    price=clearing.yuan(t.price_fen),
                    price_fen=t.price_fen,
                    quantity=_qty(t.quantity, kind),
                    quantity_base=t.quantity,
                    fee=clearing.yuan(t.buyer_fee_fen if buys else t.seller_fee_fen),
                    fee_fen=t.buyer_fee_fen if buys else t.seller_fee_fen,
                    at=t.at,
                )
                for t in fills
                if (t.buy_order_id if buys else t.sell_order_id) == o.id
            ],
            created_at=o.created_at,
            updated_at=o.updated_at,
        )

    # ------------------------------------------------------------------ market data
    async def get_order_book(self, instrument_id: int) -> s.BookOut:
        info = await self._market_info(instrument_id)
        now = self.clock.now()
        day = business_date(now)
        book_id = self._book_ids.get((info.market_id, day))
        if book_id is None:

            async def find(uow: UnitOfWork) -> int | None:
                found = await uow.session.execute(
                    select(BookDay.id).where(BookDay.market_id == info.market_id, BookDay.trade_date == day)
                )
                return found.scalar_one_or_none()

            book_id = await self.db.read(find)

        async def work(uow: UnitOfWork) -> s.BookOut:
            ses = uow.session
            market = await ses.get(Market, info.market_id)
            assert market is not None
            row = None if book_id is None else await ses.get(BookDay, book_id)
            prev_close = market.prev_close_fen if row is None else row.prev_close_fen
            band = price_band(prev_close, market.band_bps if row is None else row.band_bps, market.tick_fen)
            bids: list[s.LevelOut] = []
            asks: list[s.LevelOut] = []
            listings: list[s.ListingOut] = []
            next_seq = 1
            if row is not None and row.status == "open":
                state = await self.sequencer.load(ses, row)
                next_seq = state.next_seq
                depth = state.book.depth(5)
                bids = [self._level(lv.price_fen, lv.quantity, lv.order_count, info.kind) for lv in depth.bids]
                asks = [self._level(lv.price_fen, lv.quantity, lv.order_count, info.kind) for lv in depth.asks]
                if row.mode == BookMode.LISTED.value:
                    pickable = {(Side.BUY, lv.price_fen) for lv in depth.bids} | {
                        (Side.SELL, lv.price_fen) for lv in depth.asks
                    }
                    listings = [
                        s.ListingOut(
                            id=o.order_id,
                            side=o.side.value,
                            price=clearing.yuan(o.price_fen),
                            price_fen=o.price_fen,
                            quantity=_qty(o.quantity, info.kind),
                            quantity_base=o.quantity,
                        )
                        for o in state.book.open_orders()
                        if (o.side, o.price_fen) in pickable
                    ]
            return s.BookOut(
                instrument_id=instrument_id,
                trade_date=day,
                mode=market.mode,
                status="closed" if row is not None and row.status != "open" else "open",
                prev_close=clearing.yuan(prev_close),
                band_lower=clearing.yuan(band.lower_fen),
                band_upper=clearing.yuan(band.upper_fen),
                bids=bids,
                asks=asks,
                listings=listings,
                journal_seq=next_seq - 1,
            )

        if book_id is None:
            return await self.db.read(work)
        async with self.sequencer.lock(book_id):
            return await self.db.read(work)

    def _level(self, price_fen: int, quantity: int, count: int, kind: str) -> s.LevelOut:
        return s.LevelOut(
            price=clearing.yuan(price_fen),
            price_fen=price_fen,
            quantity=_qty(quantity, kind),
            quantity_base=quantity,
            order_count=count,
        )

    async def book_snapshot(self, instrument_id: int, day: dt.date) -> BookSnapshot | None:
        """The book of `day` as the matcher holds it (replayed from the journal when not in memory)."""
        info = await self._market_info(instrument_id)

        async def find(uow: UnitOfWork) -> BookDay | None:
            return (
                await uow.session.execute(
                    select(BookDay).where(BookDay.market_id == info.market_id, BookDay.trade_date == day)
                )
            ).scalar_one_or_none()

        row = await self.db.read(find)
        if row is None:
            return None

        async def work(uow: UnitOfWork) -> BookSnapshot:
            return (await self.sequencer.load(uow.session, row)).book.snapshot()

        async with self.sequencer.lock(row.id or 0):
            return await self.db.read(work)

    async def list_trades(
        self,
        instrument_id: int,
        *,
        trade_date: dt.date | None,
        venue: str | None,
        limit: int,
        before_id: int | None,
    ) -> s.TradePage:
        info = await self._market_info(instrument_id)

        async def work(uow: UnitOfWork) -> s.TradePage:
            q = select(Trade).where(Trade.instrument_id == instrument_id)
            if trade_date is not None:
                q = q.where(Trade.trade_date == trade_date)
            if venue is not None:
                q = q.where(Trade.venue == venue)
            if before_id is not None:
                q = q.where(Trade.id < before_id)
            rows = (await uow.session.execute(q.order_by(Trade.id.desc()).limit(limit + 1))).scalars().all()  # type: ignore[union-attr]
            items = [
                s.TradeOut(
                    id=t.id or 0,
                    instrument_id=t.instrument_id,
                    venue=t.venue,
                    trade_date=t.trade_date,
                    price=clearing.yuan(t.price_fen),
                    price_fen=t.price_fen,
                    quantity=_qty(t.quantity, info.kind),
                    quantity_base=t.quantity,
                    taker_side=t.taker_side,
                    at=t.at,
                )
                for t in rows[:limit]
            ]
            return s.TradePage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

        return await self.db.read(work)

    async def get_daily_bars(self, instrument_id: int, *, date_from: dt.date, date_to: dt.date) -> list[s.DayOut]:
        """One entry per day that has a book or trades: bars per venue, previous close and close."""
        if date_to < date_from:
            raise InvalidInput("date_to", "The end date must not be before the start date.")
        if (date_to - date_from).days > 366:
            raise InvalidInput("date_to", "Ask for at most 366 days at a time.")
        info = await self._market_info(instrument_id)

        async def work(uow: UnitOfWork) -> list[s.DayOut]:
            ses = uow.session
            market = await ses.get(Market, info.market_id)
            assert market is not None
            rows = (
                (
                    await ses.execute(
                        select(Trade)
                        .where(
                            Trade.market_id == info.market_id,
                            Trade.trade_date >= date_from,
                            Trade.trade_date <= date_to,
                        )
                        .order_by(Trade.id)  # type: ignore[arg-type]
                    )
                )
                .scalars()
                .all()
            )
            books = {
                b.trade_date: b
                for b in (
                    await ses.execute(
                        select(BookDay).where(
                            BookDay.market_id == info.market_id,
                            BookDay.trade_date >= date_from,
                            BookDay.trade_date <= date_to,
                        )
                    )
                ).scalars()
            }
            earlier = (
                await ses.execute(
                    select(BookDay.close_fen)
                    .where(
                        BookDay.market_id == info.market_id,
                        BookDay.trade_date < date_from,
                        BookDay.status == "closed",
                    )
                    .order_by(BookDay.trade_date.desc())  # type: ignore[attr-defined]
                    .limit(1)
                )
            ).scalar_one_or_none()
            prints_by_day: dict[dt.date, list[TradePrint]] = {}
            for t in rows:
                prints_by_day.setdefault(t.trade_date, []).append(
                    TradePrint(Venue(t.venue), t.trade_date, t.price_fen, t.quantity, t.notional_fen)
                )
            running_close = earlier if earlier is not None else market.prev_close_fen
            out: list[s.DayOut] = []
            for day in sorted(set(prints_by_day) | set(books)):
                row = books.get(day)
                prev = row.prev_close_fen if row is not None else running_close
                summary = daily_summary(prints_by_day.get(day, []), day, prev, market.tick_fen)
                closed = row is not None and row.status == "closed" and row.close_fen is not None
                close = row.close_fen if closed and row is not None and row.close_fen is not None else summary.close_fen
                running_close = close
                out.append(
                    s.DayOut(
                        trade_date=day,
                        prev_close=clearing.yuan(prev),
                        prev_close_fen=prev,
                        close=clearing.yuan(close),
                        close_fen=close,
                        closed=closed,
                        bars=[
                            s.BarOut(
                                venue=b.venue.value,
                                open=clearing.yuan(b.open_fen),
                                high=clearing.yuan(b.high_fen),
                                low=clearing.yuan(b.low_fen),
                                last=clearing.yuan(b.last_fen),
                                open_fen=b.open_fen,
                                high_fen=b.high_fen,
                                low_fen=b.low_fen,
                                last_fen=b.last_fen,
                                volume=_qty(b.volume, info.kind),
                                volume_base=b.volume,
                                turnover=clearing.yuan(b.turnover_fen),
                                turnover_fen=b.turnover_fen,
                                trade_count=b.trade_count,
                            )
                            for b in summary.bars
                        ],
                    )
                )
            return out

        return await self.db.read(work)

    async def monthly_average_price_fen(self, *, kind: str, year: int, month: int) -> int | None:
        """Volume-weighted average price (fen, half up) of the month's listed and continuous trades of instruments
        of `kind`; None without such trades. For compliance: fines are priced at the month before the deadline."""
        first = dt.date(year, month, 1)
        last = (dt.date(year + month // 12, month % 12 + 1, 1)) - dt.timedelta(days=1)

        async def work(uow: UnitOfWork) -> int | None:
            # Σ price × quantity over Σ quantity: a price per display unit at any scale (not the turnover).
            price_quantity, volume = (
                await uow.session.execute(
                    select(
                        func.coalesce(func.sum(Trade.price_fen * Trade.quantity), 0),
                        func.coalesce(func.sum(Trade.quantity), 0),
                    )
                    .join(Market, Market.id == Trade.market_id)
                    .where(
                        Market.kind == kind,
                        Trade.venue.in_([v.value for v in CLOSE_SETTING_VENUES]),  # type: ignore[attr-defined]
                        Trade.trade_date >= first,
                        Trade.trade_date <= last,
                    )
                )
            ).one()
            if int(volume) == 0:
                return None
            return round_half_up_to_tick(int(price_quantity), int(volume), 1)

        return await self.db.read(work)

    # ------------------------------------------------------------------ the daily close
    async def close_trading_day(self, day: dt.date | None = None, who: Identity | None = None) -> s.CloseOut:
        """Close `day` (default today) in every market: expire open orders and block proposals (holds released),
        set the close (VWAP of the day's listed and continuous trades, else the previous close), which is the
        next day's band reference. Idempotent per market and day; earlier unclosed days are closed first."""
        now = self.clock.now()
        today = business_date(now)
        day = day or today
        if day > today:
            raise InvalidInput("trade_date", "A trading day can be closed on or after that day, not before.")
        actor = who.actor if who is not None else SYSTEM_ACTOR

        async def markets(uow: UnitOfWork) -> list[int]:
            return list((await uow.session.execute(select(Market.instrument_id).order_by(Market.id))).scalars())  # type: ignore[arg-type]

        out: list[s.ClosedMarketOut] = []
        for instrument_id in await self.db.read(markets):
            info = await self._market_info(instrument_id)
            await self._close_stale_days(info, day, now)
            closed = await self._close_market_day(info, day, now, actor)
            if closed is not None:
                out.append(closed)
        return s.CloseOut(trade_date=day, markets=out)

    async def _close_market_day(
        self, info: MarketInfo, day: dt.date, now: dt.datetime, actor: str
    ) -> s.ClosedMarketOut | None:
        async def find(uow: UnitOfWork) -> tuple[int | None, bool]:
            found = (
                await uow.session.execute(
                    select(BookDay.id).where(BookDay.market_id == info.market_id, BookDay.trade_date == day)
                )
            ).scalar_one_or_none()
            traded = (
                await uow.session.execute(
                    select(Trade.id).where(Trade.market_id == info.market_id, Trade.trade_date == day).limit(1)
                )
            ).first() is not None
            return found, traded

        book_id, traded = await self.db.read(find)
        if book_id is None and not traded and not self.is_working_day(day):
            return None

        async def work(uow: UnitOfWork) -> s.ClosedMarketOut:
            ses = uow.session
            row = await self._ensure_book_row(ses, info.market_id, day, now)
            market = await ses.get(Market, info.market_id)
            assert market is not None
            if row.status == "closed":
                return s.ClosedMarketOut(
                    instrument_id=info.instrument_id,
                    close=clearing.yuan(row.close_fen or row.prev_close_fen),
                    close_fen=row.close_fen or row.prev_close_fen,
                    expired_orders=0,
                    expired_block_trades=0,
                    already_closed=True,
                )
            expired = 0
            if book_id is not None:
                state = await self.sequencer.load(ses, row)
                open_ids = [o.order_id for o in state.book.open_orders()]
                if open_ids:
                    orders = {
                        o.id: o
                        for o in (await ses.execute(select(Order).where(Order.id.in_(open_ids)))).scalars()  # type: ignore[union-attr]
                    }
                    for oid in sorted(open_ids):
                        command = Cancel(oid, now, None)
                        result = self.sequencer.apply(state, command)
                        assert result.ok, result
                        order = orders[oid]
                        order.journal_seq = await self.sequencer.append(ses, state, command, now)
                        order.cancelled_quantity += result.cancelled_quantity
                        order.status = Status.CANCELLED.value
                        order.cancel_reason = "expired"
                        order.updated_at = now
                        await self._release(ses, order, now)
                        expired += 1
            blocks = (
                (
                    await ses.execute(
                        select(BlockTrade).where(
                            BlockTrade.market_id == info.market_id,
                            BlockTrade.status == "proposed",
                            BlockTrade.trade_date <= day,
                        )
                    )
                )
                .scalars()
                .all()
            )
            for bt in blocks:
                await self._release_block(ses, bt, now, "expired")
            prints = [
                TradePrint(Venue(v), day, p, q, n)
                for v, p, q, n in (
                    await ses.execute(
                        select(Trade.venue, Trade.price_fen, Trade.quantity, Trade.notional_fen)
                        .where(Trade.market_id == info.market_id, Trade.trade_date == day)
                        .order_by(Trade.id)  # type: ignore[arg-type]
                    )
                ).all()
            ]
            summary = daily_summary(prints, day, row.prev_close_fen, row.tick_fen)
            row.status = "closed"
            row.close_fen = summary.close_fen
            row.closed_at = now
            if market.last_close_date is None or day > market.last_close_date:
                market.prev_close_fen = summary.close_fen
                market.last_close_date = day
            await ses.flush()
            uow.audit(
                actor,
                "market.close",
                "market",
                str(info.market_id),
                {"trade_date": day.isoformat(), "close_fen": summary.close_fen, "expired_orders": expired},
            )
            return s.ClosedMarketOut(
                instrument_id=info.instrument_id,
                close=clearing.yuan(summary.close_fen),
                close_fen=summary.close_fen,
                expired_orders=expired,
                expired_block_trades=len(blocks),
                already_closed=False,
            )

        if book_id is None:
            result = await self.db.run(work)
        else:
            result = await self._exclusive(book_id, work)
            self.sequencer.forget(book_id)
        self._book_ids.pop((info.market_id, day), None)
        return result

    # ------------------------------------------------------------------ block trades
    def _block_rules(self, market: Market) -> BlockRules:
        return BlockRules(
            quantity_min=market.block_quantity_min,
            scale=_scale(market.kind),
            band_bps=market.block_band_bps,
            tick_fen=market.tick_fen,
            lot_quantity=market.lot_quantity,
            sessions=BLOCK_SESSIONS,
        )

    def _raise_block(self, violations: Sequence[Any]) -> None:
        if violations:
            v = violations[0]
            slug = _BLOCK_PROBLEMS.get(v.code, ("invalid-input", None))[0]
            field_name = {"price_fen": "price", "seller": "counterparty_organisation_id", "now": None}.get(
                v.field, v.field
            )
            if slug == "not-found":
                raise NotFound("block trade")
            raise AppError(
                slug,
                v.message,
                field=field_name,
                extra={"errors": [{"code": x.code, "detail": x.message} for x in violations]}
                if len(violations) > 1
                else None,
            )

    async def propose_block_trade(
        self, who: Identity, req: s.ProposeBlockTrade, request_key: str | None
    ) -> s.BlockTradeOut:
        info = await self._market_info(req.instrument_id)
        price_fen = parse_money_fen(req.price, field="price")
        quantity = parse_quantity(req.quantity, scale=info.scale)
        side = Side(req.side)
        now = self.clock.now()
        day = business_date(now)

        async def work(uow: UnitOfWork) -> s.BlockTradeOut:
            ses = uow.session
            if request_key is not None:
                prior = (
                    await ses.execute(select(BlockTrade).where(BlockTrade.request_key == request_key))
                ).scalar_one_or_none()
                if prior is not None:
                    return self._block_out(prior, info.kind)
            market = await ses.get(Market, info.market_id)
            assert market is not None
            other = await ses.get(Organisation, req.counterparty_organisation_id)
            if other is None or other.kind == "system":
                raise AppError("not-found", "No such counterparty organisation.", field="counterparty_organisation_id")
            me, them = str(who.organisation_id), str(other.id)
            buyer, seller = (me, them) if side is Side.BUY else (them, me)
            outcome = propose_block_trade(
                BlockTerms(0, buyer, seller, price_fen, quantity),
                me,
                prev_close_fen=market.prev_close_fen,
                now=now,
                rules=self._block_rules(market),
                is_working_day=self.is_working_day,
            )
            self._raise_block(outcome.violations)
            inst = await self.registry._instrument(ses, info.instrument_id)
            acc = await self._trading_account(ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
            bt = BlockTrade(
                market_id=info.market_id,
                instrument_id=info.instrument_id,
                buyer_organisation_id=int(buyer),
                seller_organisation_id=int(seller),
                buyer_account_id=acc.id if side is Side.BUY else None,
                seller_account_id=acc.id if side is Side.SELL else None,
                proposer_organisation_id=who.organisation_id,
                price_fen=price_fen,
                quantity=quantity,
                status="proposed",
                proposed_by=who.principal_id,
                request_key=request_key,
                trade_date=day,
                created_at=now,
            )
            ses.add(bt)
            await ses.flush()
            await self._block_hold(ses, bt, market, inst, acc, side, now, count=1)
            uow.audit(
                who.actor,
                "block.propose",
                "block_trade",
                str(bt.id),
                {"instrument": inst.code, "side": side.value, "price_fen": price_fen, "quantity": quantity},
            )
            return self._block_out(bt, info.kind)

        return await self.db.run(work)

    async def _block_hold(
        self,
        ses: AsyncSession,
        bt: BlockTrade,
        market: Market,
        inst: Instrument,
        acc: RegistryAccount,
        side: Side,
        now: dt.datetime,
        *,
        count: int,
    ) -> int:
        """Hold one side of a block trade; returns the hold id (the proposer's is also kept on the row)."""
        ids = await self.accounts.ids_for(ses, inst.asset_id)
        if side is Side.SELL:
            la = await self._units_ledger(ses, acc, inst)
            await self._check_sellable(ses, la, acc, inst, bt.quantity, business_date(now))
            amount, source, clr, asset, funds = (
                bt.quantity,
                la,
                ids.units_clearing_id,
                ids.units_asset_id,
                False,
            )
        else:
            fund = await self.accounts.fund(ses, acc.organisation_id)
            amount = buy_hold_fen(bt.price_fen, bt.quantity, _scale(market.kind), market.taker_fee_bps)
            source, clr, asset, funds = fund, ids.cny_clearing_id, ids.cny_asset_id, True
        hold_id = await self._hold(
            ses,
            prefix=f"blk:{bt.id}",
            count=count,
            from_account_id=source,
            clearing_id=clr,
            asset_id=asset,
            amount=amount,
            now=now,
            ref=f"block:{bt.id}",
            funds=funds,
        )
        if count == 1:
            bt.hold_transfer_id = hold_id
            bt.held_amount = amount
        return hold_id

    async def accept_block_trade(self, who: Identity, block_id: int, req: s.AcceptBlockTrade) -> s.BlockTradeOut:
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.BlockTradeOut:
            ses = uow.session
            bt = await self._visible_block(ses, who, block_id)
            market = await ses.get(Market, bt.market_id)
            assert market is not None
            if bt.status == "settled" and bt.decided_by is not None:
                return self._block_out(bt, market.kind)
            if bt.status != "proposed":
                raise Conflict("invalid-state", f"Block trade {bt.id} is {bt.status}.")
            terms = BlockTerms(
                bt.id or 0,
                str(bt.buyer_organisation_id),
                str(bt.seller_organisation_id),
                bt.price_fen,
                bt.quantity,
                buyer_confirmed=bt.proposer_organisation_id == bt.buyer_organisation_id,
                seller_confirmed=bt.proposer_organisation_id == bt.seller_organisation_id,
            )
            outcome = confirm_block_trade(
                terms,
                str(who.organisation_id),
                prev_close_fen=market.prev_close_fen,
                now=now,
                rules=self._block_rules(market),
                is_working_day=self.is_working_day,
            )
            self._raise_block(outcome.violations)
            inst = await self.registry._instrument(ses, bt.instrument_id)
            side = Side.BUY if who.organisation_id == bt.buyer_organisation_id else Side.SELL
            acc = await self._trading_account(ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
            if side is Side.BUY:
                bt.buyer_account_id = acc.id
            else:
                bt.seller_account_id = acc.id
            accept_hold = await self._block_hold(ses, bt, market, inst, acc, side, now, count=2)
            ids = await self.accounts.ids_for(ses, inst.asset_id)
            notional = notional_fen(bt.price_fen, bt.quantity, _scale(market.kind))
            fee = fee_fen(notional, market.taker_fee_bps)
            trade = Trade(
                market_id=bt.market_id,
                instrument_id=bt.instrument_id,
                venue=Venue.BLOCK.value,
                trade_date=business_date(now),
                price_fen=bt.price_fen,
                quantity=bt.quantity,
                notional_fen=notional,
                buyer_organisation_id=bt.buyer_organisation_id,
                seller_organisation_id=bt.seller_organisation_id,
                buyer_account_id=bt.buyer_account_id or 0,
                seller_account_id=bt.seller_account_id or 0,
                buyer_fee_fen=fee,
                seller_fee_fen=fee,
                block_trade_id=bt.id,
                at=now,
            )
            ses.add(trade)
            await ses.flush()
            proposer_sells = bt.proposer_organisation_id == bt.seller_organisation_id
            holds = {
                "proposer": (bt.hold_transfer_id or 0, bt.quantity if proposer_sells else notional + fee, 1),
                "acceptor": (accept_hold, notional + fee if proposer_sells else bt.quantity, 2),
            }
            for hold_id, amount, n in holds.values():
                await clearing.collect(
                    ses, hold_id=hold_id, amount=amount, client_id=f"blk:{bt.id}:h{n}:r", now=now, code="trade"
                )
            await self._deliver(ses, ids, inst, trade, now)
            bt.status = "settled"
            bt.trade_id = trade.id
            bt.decided_by = who.principal_id
            bt.decided_at = now
            bt.hold_transfer_id = None
            bt.held_amount = 0
            uow.audit(who.actor, "block.accept", "block_trade", str(bt.id), {"trade": trade.id})
            return self._block_out(bt, market.kind)

        return await self.db.run(work)

    async def cancel_block_trade(self, who: Identity, block_id: int) -> s.BlockTradeOut:
        """Withdraw (proposer) or decline (counterparty) a proposal; the proposer's hold is released."""
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.BlockTradeOut:
            ses = uow.session
            bt = await self._visible_block(ses, who, block_id)
            market = await ses.get(Market, bt.market_id)
            assert market is not None
            if bt.status == "cancelled":
                return self._block_out(bt, market.kind)
            if bt.status != "proposed":
                raise Conflict("invalid-state", f"Block trade {bt.id} is {bt.status}.")
            await self._release_block(ses, bt, now, "cancelled")
            bt.decided_by = who.principal_id
            uow.audit(who.actor, "block.cancel", "block_trade", str(bt.id), {})
            return self._block_out(bt, market.kind)

        return await self.db.run(work)

    async def _release_block(self, ses: AsyncSession, bt: BlockTrade, now: dt.datetime, status: str) -> None:
        if bt.hold_transfer_id is not None:
            await clearing.collect(
                ses, hold_id=bt.hold_transfer_id, amount=0, client_id=f"blk:{bt.id}:h1:r", now=now, code="trade-release"
            )
        bt.hold_transfer_id = None
        bt.held_amount = 0
        bt.status = status
        bt.decided_at = now

    async def _visible_block(self, ses: AsyncSession, who: Identity, block_id: int) -> BlockTrade:
        bt = (
            await ses.execute(
                select(BlockTrade).where(BlockTrade.id == block_id).execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if bt is None or not (
            who.reads_all() or who.organisation_id in (bt.buyer_organisation_id, bt.seller_organisation_id)
        ):
            raise NotFound("block trade", field="block_trade_id")
        return bt

    async def get_block_trade(self, who: Identity, block_id: int) -> s.BlockTradeOut:
        async def work(uow: UnitOfWork) -> s.BlockTradeOut:
            bt = await self._visible_block(uow.session, who, block_id)
            market = await uow.session.get(Market, bt.market_id)
            assert market is not None
            return self._block_out(bt, market.kind)

        return await self.db.read(work)

    def _block_out(self, bt: BlockTrade, kind: str) -> s.BlockTradeOut:
        return s.BlockTradeOut(
            id=bt.id or 0,
            instrument_id=bt.instrument_id,
            buyer_organisation_id=bt.buyer_organisation_id,
            seller_organisation_id=bt.seller_organisation_id,
            proposer_organisation_id=bt.proposer_organisation_id,
            price=clearing.yuan(bt.price_fen),
            price_fen=bt.price_fen,
            quantity=_qty(bt.quantity, kind),
            quantity_base=bt.quantity,
            status=bt.status,
            trade_id=bt.trade_id,
            trade_date=bt.trade_date,
            created_at=bt.created_at,
            decided_at=bt.decided_at,
        )

    # ------------------------------------------------------------------ auctions
    def _auction_spec(self, a: Auction, market: Market) -> OneWayAuctionSpec | PrimaryAuctionSpec:
        if a.type == "primary":
            return PrimaryAuctionSpec(
                volume=a.volume,
                reserve_price_fen=a.reserve_price_fen,
                bidder_cap_bps=a.bidder_cap_bps,
                tick_fen=market.tick_fen,
                lot_quantity=market.lot_quantity,
            )
        return OneWayAuctionSpec(
            volume=a.volume,
            prev_close_fen=a.prev_close_fen,
            floor_fen=a.floor_fen or 0,
            ceiling_fen=a.ceiling_fen or 0,
            pricing=Pricing(a.pricing),
            tick_fen=market.tick_fen,
            lot_quantity=market.lot_quantity,
            volume_min=market.block_quantity_min,
            band_bps=market.band_bps,
        )

    async def create_auction(self, who: Identity, req: s.CreateAuction, request_key: str | None) -> s.AuctionOut:
        info = await self._market_info(req.instrument_id)
        volume = parse_quantity(req.volume, scale=info.scale, field="volume")
        floor_fen = None if req.floor_price is None else parse_money_fen(req.floor_price, field="floor_price")
        ceiling_fen = None if req.ceiling_price is None else parse_money_fen(req.ceiling_price, field="ceiling_price")
        reserve_fen = None if req.reserve_price is None else parse_money_fen(req.reserve_price, field="reserve_price")
        rule = KIND_RULES[Kind(info.kind)]
        if req.type == "primary":
            if who.role.value != rule.issuer_role:
                raise Forbidden(f"Only the {rule.issuer_role} holds primary auctions of {info.kind}.")
        else:
            if who.role not in TRADER_ROLES:
                raise Forbidden("A one-way auction is offered by a participant that holds the units.")
            if req.account_id is None:
                raise InvalidInput("account_id", "Name the account that delivers the units.")
            if floor_fen is None or ceiling_fen is None:
                raise InvalidInput(
                    "floor_price" if floor_fen is None else "ceiling_price",
                    "A one-way auction needs a floor and a ceiling price within ±10% of the previous close.",
                )
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.AuctionOut:
            ses = uow.session
            if request_key is not None:
                prior = (
                    await ses.execute(select(Auction).where(Auction.request_key == request_key))
                ).scalar_one_or_none()
                if prior is not None:
                    return await self._auction_out(ses, who, prior, info.kind)
            market = await ses.get(Market, info.market_id)
            assert market is not None
            inst = await self.registry._instrument(ses, info.instrument_id)
            if req.type == "primary" and req.account_id is None:
                acc = await self.registry._allocation_account(ses, who)
            else:
                acc = await self._trading_account(ses, who, req.account_id or 0, inst, buying=False, now=now)
            auction = Auction(
                market_id=info.market_id,
                instrument_id=info.instrument_id,
                type=req.type,
                seller_organisation_id=who.organisation_id,
                seller_account_id=acc.id or 0,
                volume=volume,
                prev_close_fen=market.prev_close_fen,
                floor_fen=floor_fen,
                ceiling_fen=ceiling_fen,
                reserve_price_fen=reserve_fen,
                bidder_cap_bps=req.bidder_cap_bps if req.type == "primary" else None,
                pricing=req.pricing if req.type == "one-way" else Pricing.UNIFORM.value,
                # Drawn now, before any bid, and kept sealed until the result: it fixes the tie order.
                seed=secrets.randbelow(2**62),
                created_by=who.principal_id,
                request_key=request_key,
                created_at=now,
            )
            check = clear_auction(self._auction_spec(auction, market), [], auction.seed)
            if check.status is AuctionStatus.INVALID_SPEC:
                raise AppError(
                    "auction-spec-invalid", f"The auction's terms are invalid: {check.reason}.", field="volume"
                )
            ses.add(auction)
            await ses.flush()
            ids = await self.accounts.ids_for(ses, inst.asset_id)
            la = await self._units_ledger(ses, acc, inst)
            await self._check_sellable(ses, la, acc, inst, volume, business_date(now))
            auction.hold_transfer_id = await self._hold(
                ses,
                prefix=f"auc:{auction.id}",
                count=1,
                from_account_id=la,
                clearing_id=ids.units_clearing_id,
                asset_id=ids.units_asset_id,
                amount=volume,
                now=now,
                ref=f"auction:{auction.id}",
                funds=False,
                field_name="volume",
            )
            auction.held_amount = volume
            uow.audit(
                who.actor,
                "auction.create",
                "auction",
                str(auction.id),
                {"instrument": inst.code, "type": req.type, "volume": volume},
            )
            return await self._auction_out(ses, who, auction, info.kind)

        return await self.db.run(work)

    async def submit_bid(self, who: Identity, auction_id: int, req: s.SubmitBid, request_key: str | None) -> s.BidOut:
        price_fen = parse_money_fen(req.price, field="price")
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.BidOut:
            ses = uow.session
            auction = await self._auction(ses, auction_id, lock=True)
            market = await ses.get(Market, auction.market_id)
            assert market is not None
            if request_key is not None:
                prior = (await ses.execute(select(Bid).where(Bid.request_key == request_key))).scalar_one_or_none()
                if prior is not None:
                    return self._bid_out(prior, market.kind)
            quantity = parse_quantity(req.quantity, scale=_scale(market.kind))
            if auction.status != "open":
                raise Conflict("invalid-state", f"Auction {auction.id} is {auction.status}; bids are closed.")
            if auction.seller_organisation_id == who.organisation_id:
                raise AppError("self-trade", "The seller may not bid in its own auction.", field="auction_id")
            if price_fen % market.tick_fen:
                raise AppError("off-tick", MESSAGES[Code.OFF_TICK], field="price")
            if quantity % market.lot_quantity:
                raise AppError("off-lot", MESSAGES[Code.OFF_LOT], field="quantity")
            if auction.floor_fen is not None and price_fen < auction.floor_fen:
                raise AppError(
                    "below-floor", f"Bid at least the floor, {clearing.yuan(auction.floor_fen)} yuan.", field="price"
                )
            if auction.ceiling_fen is not None and price_fen > auction.ceiling_fen:
                raise AppError(
                    "above-ceiling",
                    f"Bid at most the ceiling, {clearing.yuan(auction.ceiling_fen)} yuan.",
                    field="price",
                )
            inst = await self.registry._instrument(ses, auction.instrument_id)
            acc = await self._trading_account(ses, who, req.account_id, inst, buying=True, now=now)
            bid = Bid(
                auction_id=auction.id or 0,
                organisation_id=who.organisation_id,
                account_id=acc.id or 0,
                principal_id=who.principal_id,
                price_fen=price_fen,
                quantity=quantity,
                request_key=request_key,
                created_at=now,
            )
            ses.add(bid)
            await ses.flush()
            ids = await self.accounts.ids_for(ses, inst.asset_id)
            fund = await self.accounts.fund(ses, who.organisation_id)
            bid.held_amount = buy_hold_fen(price_fen, quantity, _scale(market.kind), 0)
            bid.hold_transfer_id = await self._hold(
                ses,
                prefix=f"bid:{bid.id}",
                count=1,
                from_account_id=fund,
                clearing_id=ids.cny_clearing_id,
                asset_id=ids.cny_asset_id,
                amount=bid.held_amount,
                now=now,
                ref=f"bid:{bid.id}",
                funds=True,
            )
            uow.audit(who.actor, "auction.bid", "bid", str(bid.id), {"auction": auction.id, "quantity": quantity})
            return self._bid_out(bid, market.kind)

        return await self.db.run(work)

    async def clear_auction(self, who: Identity, auction_id: int) -> s.AuctionOut:
        """Clear a sealed auction with the seed fixed at its creation; settle every allocation DVP."""
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.AuctionOut:
            ses = uow.session
            auction = await self._auction(ses, auction_id, lock=True)
            market = await ses.get(Market, auction.market_id)
            assert market is not None
            if auction.type == "primary":
                allowed = who.organisation_id == auction.seller_organisation_id
            else:
                allowed = who.organisation_id == auction.seller_organisation_id or who.role is Role.REGULATOR
            if not allowed:
                raise NotFound("auction", field="auction_id")
            if auction.status != "open":
                return await self._auction_out(ses, who, auction, market.kind)
            bids = (
                (
                    await ses.execute(select(Bid).where(Bid.auction_id == auction.id).order_by(Bid.id))  # type: ignore[arg-type]
                )
                .scalars()
                .all()
            )
            by_id = {b.id or 0: b for b in bids}
            result = clear_auction(
                self._auction_spec(auction, market),
                [AuctionBid(b.id or 0, str(b.organisation_id), b.price_fen, b.quantity, b.id or 0) for b in bids],
                auction.seed,
            )
            inst = await self.registry._instrument(ses, auction.instrument_id)
            ids = await self.accounts.ids_for(ses, inst.asset_id)
            auction.tie_order = json.dumps(list(result.tie_order))
            venue = Venue.PRIMARY_AUCTION if auction.type == "primary" else Venue.ONE_WAY_AUCTION
            cleared = result.status is AuctionStatus.CLEARED
            await clearing.collect(
                ses,
                hold_id=auction.hold_transfer_id or 0,
                amount=result.sold_quantity if cleared else 0,
                client_id=f"auc:{auction.id}:h1:r",
                now=now,
                code="trade" if cleared and result.sold_quantity else "trade-release",
            )
            allocated = {a.bid_id: a for a in result.allocations} if cleared else {}
            for bid in bids:
                alloc = allocated.get(bid.id or 0)
                amount = alloc.amount_fen(_scale(market.kind)) if alloc is not None else 0
                await clearing.collect(
                    ses,
                    hold_id=bid.hold_transfer_id or 0,
                    amount=amount,
                    client_id=f"bid:{bid.id}:h1:r",
                    now=now,
                    code="trade" if amount else "trade-release",
                )
                bid.hold_transfer_id = None
                bid.held_amount = 0
                if alloc is None or alloc.quantity == 0:
                    bid.status = "lost" if cleared else "cancelled"
                    continue
                bid.status = "won"
                bid.allocated_quantity = alloc.quantity
                bid.paid_price_fen = alloc.price_fen
                trade = Trade(
                    market_id=auction.market_id,
                    instrument_id=auction.instrument_id,
                    venue=venue.value,
                    trade_date=business_date(now),
                    price_fen=alloc.price_fen,
                    quantity=alloc.quantity,
                    notional_fen=amount,
                    buyer_organisation_id=bid.organisation_id,
                    seller_organisation_id=auction.seller_organisation_id,
                    buyer_account_id=bid.account_id,
                    seller_account_id=auction.seller_account_id,
                    auction_id=auction.id,
                    at=now,
                )
                ses.add(trade)
                await ses.flush()
                await self._deliver(ses, ids, inst, trade, now)
            for rejected in result.rejected:
                if rejected.bid_id in by_id:
                    by_id[rejected.bid_id].status = "rejected"
            auction.status = "cleared" if cleared else "cancelled"
            auction.clearing_price_fen = result.clearing_price_fen
            auction.sold_quantity = result.sold_quantity if cleared else 0
            auction.reason = result.reason
            auction.hold_transfer_id = None
            auction.held_amount = 0
            auction.cleared_at = now
            await ses.flush()
            uow.audit(
                who.actor,
                "auction.clear",
                "auction",
                str(auction.id),
                {
                    "status": auction.status,
                    "clearing_price_fen": auction.clearing_price_fen,
                    "sold": auction.sold_quantity,
                    "seed": auction.seed,
                },
            )
            return await self._auction_out(ses, who, auction, market.kind)

        return await self.db.run(work)

    async def cancel_auction(self, who: Identity, auction_id: int) -> s.AuctionOut:
        """The seller withdraws an open auction: its units and every bidder's funds are released."""
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.AuctionOut:
            ses = uow.session
            auction = await self._auction(ses, auction_id, lock=True)
            market = await ses.get(Market, auction.market_id)
            assert market is not None
            if who.organisation_id != auction.seller_organisation_id:
                raise NotFound("auction", field="auction_id")
            if auction.status == "cancelled" and auction.cleared_at is not None:
                return await self._auction_out(ses, who, auction, market.kind)
            if auction.status != "open":
                raise Conflict("invalid-state", f"Auction {auction.id} is {auction.status}.")
            await clearing.collect(
                ses,
                hold_id=auction.hold_transfer_id or 0,
                amount=0,
                client_id=f"auc:{auction.id}:h1:r",
                now=now,
                code="trade-release",
            )
            bids = (await ses.execute(select(Bid).where(Bid.auction_id == auction.id))).scalars().all()
            for bid in bids:
                await clearing.collect(
                    ses,
                    hold_id=bid.hold_transfer_id or 0,
                    amount=0,
                    client_id=f"bid:{bid.id}:h1:r",
                    now=now,
                    code="trade-release",
                )
                bid.hold_transfer_id = None
                bid.held_amount = 0
                bid.status = "cancelled"
            auction.status = "cancelled"
            auction.reason = "withdrawn by the seller"
            auction.hold_transfer_id = None
            auction.held_amount = 0
            auction.cleared_at = now
            uow.audit(who.actor, "auction.cancel", "auction", str(auction.id), {"bids": len(bids)})
            return await self._auction_out(ses, who, auction, market.kind)

        return await self.db.run(work)

    async def _auction(self, ses: AsyncSession, auction_id: int, *, lock: bool = False) -> Auction:
        q = select(Auction).where(Auction.id == auction_id).execution_options(populate_existing=True)
        if lock and not self.db.sqlite:
            # Bids and the clearing of one auction queue on its row, so no bid slips in after the clearing.
            q = q.with_for_update()
        auction = (await ses.execute(q)).scalar_one_or_none()
        if auction is None:
            raise NotFound("auction", field="auction_id")
        return auction

    async def get_auction(self, who: Identity, auction_id: int) -> s.AuctionOut:
        async def work(uow: UnitOfWork) -> s.AuctionOut:
            auction = await self._auction(uow.session, auction_id)
            market = await uow.session.get(Market, auction.market_id)
            assert market is not None
            return await self._auction_out(uow.session, who, auction, market.kind)

        return await self.db.read(work)

    async def _auction_out(self, ses: AsyncSession, who: Identity, a: Auction, kind: str) -> s.AuctionOut:
        q = select(Bid).where(Bid.auction_id == a.id)
        # Bids are sealed: a bidder sees its own; the seller and the oversight roles see all once it is decided.
        sees_all = who.reads_all() or (a.status != "open" and who.organisation_id == a.seller_organisation_id)
        if not sees_all:
            q = q.where(Bid.organisation_id == who.organisation_id)
        bids = (await ses.execute(q.order_by(Bid.id))).scalars().all()  # type: ignore[arg-type]
        decided = a.status != "open"
        return s.AuctionOut(
            id=a.id or 0,
            instrument_id=a.instrument_id,
            type=a.type,
            status=a.status,
            seller_organisation_id=a.seller_organisation_id,
            volume=_qty(a.volume, kind),
            volume_base=a.volume,
            prev_close=clearing.yuan(a.prev_close_fen),
            floor_price=_yuan(a.floor_fen),
            ceiling_price=_yuan(a.ceiling_fen),
            reserve_price=_yuan(a.reserve_price_fen)
            if decided or who.organisation_id == a.seller_organisation_id
            else None,
            bidder_cap_bps=a.bidder_cap_bps,
            pricing=a.pricing,
            clearing_price=_yuan(a.clearing_price_fen),
            clearing_price_fen=a.clearing_price_fen,
            sold=_qty(a.sold_quantity, kind),
            sold_base=a.sold_quantity,
            reason=a.reason,
            seed=a.seed if decided else None,
            tie_order=json.loads(a.tie_order) if decided and a.tie_order else None,
            bids=[self._bid_out(b, kind) for b in bids],
            created_at=a.created_at,
            cleared_at=a.cleared_at,
        )

    def _bid_out(self, b: Bid, kind: str) -> s.BidOut:
        return s.BidOut(
            id=b.id or 0,
            auction_id=b.auction_id,
            organisation_id=b.organisation_id,
            account_id=b.account_id,
            price=clearing.yuan(b.price_fen),
            price_fen=b.price_fen,
            quantity=_qty(b.quantity, kind),
            quantity_base=b.quantity,
            status=b.status,
            allocated=_qty(b.allocated_quantity, kind),
            allocated_base=b.allocated_quantity,
            paid_price=_yuan(b.paid_price_fen),
            created_at=b.created_at,
        )

    # ------------------------------------------------------------------ fund accounts
    async def request_fund_movement(
        self, who: Identity, kind: str, req: s.FundRequest, request_key: str | None
    ) -> s.FundMovementOut:
        """A deposit (moves nothing until the bank confirms) or a withdrawal (held now, posted on confirmation)."""
        amount_fen = parse_money_fen(req.amount, field="amount")
        reference = req.reference.strip()
        if any(not ch.isprintable() for ch in reference):
            raise InvalidInput("reference", "The reference must be printable text.")
        now = self.clock.now()

        async def work(uow: UnitOfWork) -> s.FundMovementOut:
            ses = uow.session
            if request_key is not None:
                prior = (
                    await ses.execute(select(FundMovement).where(FundMovement.request_key == request_key))
                ).scalar_one_or_none()
                if prior is not None:
                    return self._movement_out(prior)
            mv = FundMovement(
                organisation_id=who.organisation_id,
                kind=kind,
                amount_fen=amount_fen,
                status="requested",
                reference=reference,
                requested_by=who.principal_id,
                request_key=request_key,
                created_at=now,
            )
            ses.add(mv)
            await ses.flush()
            if kind == "withdrawal":
                fund = await self.accounts.fund(ses, who.organisation_id)
                bank = await self.accounts.settlement(ses)
                mv.held_amount = amount_fen
                mv.hold_transfer_id = await clearing.hold(
                    ses,
                    client_id=f"fund:{mv.id}:h1",
                    from_account_id=fund,
                    clearing_id=bank,
                    asset_id=await self.accounts.cny_asset_id(ses),
                    amount=amount_fen,
                    code="withdrawal",
                    now=now,
                    ref=f"fund:{mv.id}",
                    field="amount",
                    what="funds",
                )
            uow.audit(who.actor, f"funds.{kind}.request", "fund_movement", str(mv.id), {"amount_fen": amount_fen})
            return self._movement_out(mv)

        return await self.db.run(work)

    async def decide_fund_movement(self, who: Identity, movement_id: int, req: s.FundDecision) -> s.FundMovementOut:
        """The settlement bank confirms (money arrived / paid out) or rejects a requested movement."""
        now = self.clock.now()
        target = "confirmed" if req.decision == "confirm" else "rejected"

        async def work(uow: UnitOfWork) -> s.FundMovementOut:
            ses = uow.session
            q = select(FundMovement).where(FundMovement.id == movement_id).execution_options(populate_existing=True)
            if not self.db.sqlite:
                q = q.with_for_update()
            mv = (await ses.execute(q)).scalar_one_or_none()
            if mv is None:
                raise NotFound("fund movement", field="movement_id")
            if mv.status != "requested":
                if mv.status == target and mv.decided_by == who.principal_id:
                    return self._movement_out(mv)
                raise Conflict("invalid-state", f"Fund movement {mv.id} is already {mv.status}.")
            fund = await self.accounts.fund(ses, mv.organisation_id)
            if mv.kind == "deposit" and target == "confirmed":
                bank = await self.accounts.settlement(ses)
                result = await ledger.create_transfer(
                    ses,
                    client_id=f"fund:{mv.id}:deposit",
                    debit_account_id=bank,
                    credit_account_id=fund,
                    asset_id=await self.accounts.cny_asset_id(ses),
                    amount=mv.amount_fen,
                    code="deposit",
                    now=now,
                    ref=f"fund:{mv.id}",
                )
                mv.transfer_id = result.transfer.id
            elif mv.kind == "withdrawal":
                await clearing.collect(
                    ses,
                    hold_id=mv.hold_transfer_id or 0,
                    amount=mv.amount_fen if target == "confirmed" else 0,
                    client_id=f"fund:{mv.id}:h1:r",
                    now=now,
                    code="withdrawal",
                )
                mv.hold_transfer_id = None
                mv.held_amount = 0
            mv.status = target
            mv.decided_by = who.principal_id
            mv.bank_organisation_id = who.organisation_id
            mv.decided_at = now
            if req.reference.strip():
                mv.reference = (mv.reference + " / " + req.reference.strip())[:100]
            uow.audit(
                who.actor, f"funds.{mv.kind}.{target}", "fund_movement", str(mv.id), {"amount_fen": mv.amount_fen}
            )
            return self._movement_out(mv)

        return await self.db.run(work)

    async def get_fund_account(self, who: Identity) -> s.FundAccountOut:
        async def work(uow: UnitOfWork) -> s.FundAccountOut:
            ses = uow.session
            row = (
                await ses.execute(
                    select(LedgerAccount)
                    .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
                    .where(
                        LedgerAsset.code == clearing.CNY,
                        LedgerAccount.owner_kind == clearing.FUND,
                        LedgerAccount.owner_id == who.organisation_id,
                    )
                )
            ).scalar_one_or_none()
            posted = 0 if row is None else row.credits_posted - row.debits_posted
            held = 0 if row is None else row.debits_pending
            return s.FundAccountOut(
                organisation_id=who.organisation_id,
                currency=clearing.CNY,
                balance=clearing.yuan(posted),
                available=clearing.yuan(posted - held),
                held=clearing.yuan(held),
                balance_fen=posted,
                available_fen=posted - held,
                held_fen=held,
            )

        return await self.db.read(work)

    async def list_fund_movements(
        self, who: Identity, *, status: str | None, limit: int, before_id: int | None
    ) -> list[s.FundMovementOut]:
        async def work(uow: UnitOfWork) -> list[s.FundMovementOut]:
            q = select(FundMovement)
            if not (who.role is Role.BANK or who.reads_all()):
                q = q.where(FundMovement.organisation_id == who.organisation_id)
            if status is not None:
                q = q.where(FundMovement.status == status)
            if before_id is not None:
                q = q.where(FundMovement.id < before_id)
            rows = (await uow.session.execute(q.order_by(FundMovement.id.desc()).limit(limit))).scalars()  # type: ignore[union-attr]
            return [self._movement_out(m) for m in rows]

        return await self.db.read(work)

    def _movement_out(self, m: FundMovement) -> s.FundMovementOut:
        return s.FundMovementOut(
            id=m.id or 0,
            organisation_id=m.organisation_id,
            kind=m.kind,
            amount=clearing.yuan(m.amount_fen),
            amount_fen=m.amount_fen,
            status=m.status,
            reference=m.reference,
            created_at=m.created_at,
            decided_at=m.decided_at,
        )

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self) -> list[str]:
        """Every broken promise of the trading context, as messages (empty when all hold).

        - every open order, bid, auction, block proposal and withdrawal has exactly one unresolved hold, of the
          amount its remaining quantity needs (sell: remaining units; buy: remaining × unit cost);
        - no unresolved trading hold belongs to anything closed;
        - each open book equals its journal's replay, is sound (`check_invariants`), and its live orders are
          exactly the resting orders in the database with the same remaining quantities.
        """
        problems: list[str] = []

        async def holds(uow: UnitOfWork) -> list[str]:
            ses = uow.session
            out: list[str] = []
            resolved = select(LedgerTransfer.resolves_id).where(LedgerTransfer.resolves_id.is_not(None))  # type: ignore[union-attr]
            open_holds = {
                t.id: t
                for t in (
                    await ses.execute(
                        select(LedgerTransfer).where(
                            LedgerTransfer.kind == ledger.PENDING,
                            LedgerTransfer.id.not_in(resolved),  # type: ignore[union-attr]
                            or_(
                                *(
                                    LedgerTransfer.ref.like(f"{p}:%")  # type: ignore[union-attr]
                                    for p in ("order", "bid", "auction", "block", "fund")
                                )
                            ),
                        )
                    )
                ).scalars()
            }
            expected: dict[int, tuple[str, int]] = {}

            def want(label: str, hold_id: int | None, amount: int) -> None:
                if hold_id is None:
                    if amount:
                        out.append(f"{label}: needs a hold of {amount} but has none")
                    return
                expected[hold_id] = (label, amount)

            scale_of = {m.id: _scale(m.kind) for m in (await ses.execute(select(Market))).scalars()}
            for o in (await ses.execute(select(Order).where(Order.status == Status.RESTING.value))).scalars():
                remaining = o.quantity - o.filled_quantity - o.cancelled_quantity
                need = (
                    remaining
                    if o.side == Side.SELL.value
                    else buy_hold_fen(o.hold_price_fen or 0, remaining, scale_of[o.market_id], o.hold_fee_bps)
                )
                if o.held_amount != need:
                    out.append(f"order {o.id}: held_amount {o.held_amount} != {need} for {remaining} remaining")
                want(f"order {o.id}", o.hold_transfer_id, need)
            auction_scale = {
                a.id: scale_of[a.market_id] for a in (await ses.execute(select(Auction))).scalars()
            }
            for b in (await ses.execute(select(Bid).where(Bid.status == "open"))).scalars():
                need = buy_hold_fen(b.price_fen, b.quantity, auction_scale[b.auction_id], 0)
                want(f"bid {b.id}", b.hold_transfer_id, need)
            for a in (await ses.execute(select(Auction).where(Auction.status == "open"))).scalars():
                want(f"auction {a.id}", a.hold_transfer_id, a.volume)
            for bt in (await ses.execute(select(BlockTrade).where(BlockTrade.status == "proposed"))).scalars():
                want(f"block trade {bt.id}", bt.hold_transfer_id, bt.held_amount)
            for mv in (
                await ses.execute(
                    select(FundMovement).where(
                        and_(FundMovement.kind == "withdrawal", FundMovement.status == "requested")
                    )
                )
            ).scalars():
                want(f"withdrawal {mv.id}", mv.hold_transfer_id, mv.amount_fen)
            for hold_id, (label, amount) in expected.items():
                t = open_holds.get(hold_id)
                if t is None:
                    out.append(f"{label}: hold {hold_id} is not an open trading hold")
                elif t.amount != amount:
                    out.append(f"{label}: hold {hold_id} is {t.amount}, expected {amount}")
            for hold_id in sorted(set(open_holds) - set(expected)):
                out.append(f"hold {hold_id} ({open_holds[hold_id].ref}) belongs to nothing open")
            return out

        problems += await self.db.read(holds)

        async def open_books(uow: UnitOfWork) -> list[BookDay]:
            return list((await uow.session.execute(select(BookDay).where(BookDay.status == "open"))).scalars())

        for row in await self.db.read(open_books):

            async def check(uow: UnitOfWork, row: BookDay = row) -> list[str]:
                ses = uow.session
                out: list[str] = []
                state = await self.sequencer.load(ses, row)
                fresh = replay(await read_journal(ses, row.id or 0), book_config(row))
                if fresh.snapshot() != state.book.snapshot():
                    out.append(f"book {row.id}: memory differs from the journal's replay")
                out += [f"book {row.id}: {p}" for p in state.book.check_invariants()]
                live = {o.order_id: o.quantity for o in state.book.open_orders()}
                resting = {
                    o.id: o.quantity - o.filled_quantity - o.cancelled_quantity
                    for o in (
                        await ses.execute(
                            select(Order).where(Order.book_id == row.id, Order.status == Status.RESTING.value)
                        )
                    ).scalars()
                }
                if live != resting:
                    out.append(f"book {row.id}: live orders {live} != resting orders in the database {resting}")
                return out

            async with self.sequencer.lock(row.id or 0):
                problems += await self.db.read(check)
        return problems
