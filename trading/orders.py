"""Placing and cancelling orders through the sequenced book of the day, each in one unit of work under the
book's lock (`trading.books.exclusive`).

How an order goes (`place_order`):
1. the caller's units (sell) or funds (buy: remaining × unit cost) are held on the ledger, after the T+1 check;
2. the pure book runs the command; a rejection raises its problem and rolls everything back;
3. the accepted command is journalled under the book's next sequence number;
4. every trade settles delivery versus payment through clearing (`trading.settlement`): each side's hold is
   posted for what the trade needs (the rest released, exactly once), what stays open is held again, clearing
   pays out units, yuan and fees; cancelled remainders release their holds.
The commit acknowledges the command; if anything fails after the book changed, the in-memory book is dropped
and rebuilt from the journal, so memory never runs ahead of the database.
"""

from __future__ import annotations

from sqlalchemy import select

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.identity import Identity
from core.quantity import parse_money_fen, parse_quantity
from trading import schemas as s
from trading._common import book_error, entry_check
from trading.books import exclusive
from trading.close import open_book_day
from trading.context import TradingContext
from trading.domain.commands import Cancel, Command, Pick, Place
from trading.domain.model import Code, OrderKind, Side, Status
from trading.domain.money import buy_hold_fen
from trading.domain.sessions import LISTED_SESSIONS
from trading.markets import market_info
from trading.models import BookDay, Market, Order
from trading.queries import order_out, order_view, visible_order
from trading.settlement import check_sellable, hold, release, settle, trading_account, units_ledger


async def place_order(ctx: TradingContext, who: Identity, req: s.PlaceOrder, request_key: str | None) -> s.OrderOut:
    info = await market_info(ctx, req.instrument_id)
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
    now = ctx.clock.now()
    day = business_date(now)
    if not LISTED_SESSIONS.is_open(now, ctx.is_working_day):
        raise AppError(
            "market-closed", "Orders are accepted 09:30–11:30 and 13:00–15:00 on trading days (Asia/Shanghai)."
        )
    book_id = await open_book_day(ctx, info, day, now)
    owner = str(who.organisation_id)

    async def work(uow: UnitOfWork) -> s.OrderOut:
        ses = uow.session
        if request_key is not None:
            prior = (await ses.execute(select(Order).where(Order.request_key == request_key))).scalar_one_or_none()
            if prior is not None:
                return await order_out(ses, prior, info.kind)
        row = await ses.get(BookDay, book_id)
        assert row is not None
        if row.status != "open":
            raise AppError("market-closed", "Today's trading in this instrument is closed.")
        inst = await ctx.registry._instrument(ses, info.instrument_id)
        acc = await trading_account(ctx, ses, who, req.account_id, inst, buying=side is Side.BUY, now=now)
        state = await ctx.sequencer.load(ses, row)
        early = entry_check(state.book.config, kind, price_fen, quantity, pick=pick)
        if early is not None:
            raise book_error(early, row, pick=pick)
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
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
            la = await units_ledger(ctx, ses, acc, inst)
            await check_sellable(ses, la, acc, inst, quantity, day)
            order.hold_count = 1
            order.held_amount = quantity
            order.hold_transfer_id = await hold(
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
            fund = await ctx.accounts.fund(ses, who.organisation_id)
            order.hold_price_fen = cost_price
            order.hold_fee_bps = max(row.taker_fee_bps, row.maker_fee_bps)
            order.hold_count = 1
            order.held_amount = buy_hold_fen(cost_price, quantity, row.scale, order.hold_fee_bps)
            order.hold_transfer_id = await hold(
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
        result = ctx.sequencer.apply(state, command)
        if not result.ok:
            raise book_error(result.code, row, pick=pick)
        order.journal_seq = await ctx.sequencer.append(ses, state, command, now)
        fills = await settle(ctx, ses, row, inst, ids, order, result, now)
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
        return order_view(order, info.kind, fills)

    return await exclusive(ctx, book_id, work)


async def cancel_order(ctx: TradingContext, who: Identity, order_id: int) -> s.OrderOut:
    async def locate(uow: UnitOfWork) -> tuple[int, str]:
        order = await visible_order(uow.session, who, order_id)
        market = await uow.session.get(Market, order.market_id)
        assert market is not None
        return order.book_id, market.kind

    book_id, kind = await ctx.db.read(locate)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> s.OrderOut:
        ses = uow.session
        order = (
            await ses.execute(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
        ).scalar_one()
        if order.organisation_id != who.organisation_id:
            raise NotFound("order", field="order_id")
        if order.status == Status.FILLED.value:
            raise book_error(Code.ORDER_FILLED)
        if order.status == Status.CANCELLED.value:
            raise book_error(Code.ORDER_CANCELLED)
        row = await ses.get(BookDay, book_id)
        assert row is not None
        state = await ctx.sequencer.load(ses, row)
        command = Cancel(order_id, now, str(who.organisation_id))
        result = ctx.sequencer.apply(state, command)
        if not result.ok:
            raise book_error(result.code, row)
        order.journal_seq = await ctx.sequencer.append(ses, state, command, now)
        order.cancelled_quantity += result.cancelled_quantity
        order.status = Status.CANCELLED.value
        order.cancel_reason = "user"
        order.updated_at = now
        await release(ses, order, now)
        uow.audit(who.actor, "order.cancel", "order", str(order_id), {"released": result.cancelled_quantity})
        return await order_out(ses, order, kind)

    return await exclusive(ctx, book_id, work)
