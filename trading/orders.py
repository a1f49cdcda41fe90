"""Placing and cancelling orders through the sequenced book of the day: each is a command submitted to the book's
group commit (`trading.books.submit`), which runs it in its own savepoint inside the unit of work of its batch,
under the book's lock, and answers after the batch has committed.

How an order goes (`place_order`):
1. the caller's units (sell) or funds (buy: remaining × unit cost) are held on the ledger, after the T+1 check;
2. the pure book runs the command; a rejection raises its problem and rolls back this command alone;
3. the accepted command takes the book's next sequence number (journalled with its batch, before the commit);
4. every trade settles delivery versus payment through clearing (`trading.settlement`): each side's hold is
   posted for what the trade needs (the rest released, exactly once), what stays open is held again, clearing
   pays out units, yuan and fees; cancelled remainders release their holds.
The commit acknowledges the command; if anything fails after the book changed, the command's savepoint rolls back
and the book is rebuilt from the journal, so memory never runs ahead of the database. The order's own row is
written once, whole, after the command settled, with an id taken ahead (`BookTxn.order_id`), not through the ORM's
flush.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.identity import Identity
from core.observability import ORDERS_ACCEPTED, count_on_commit
from core.quantity import parse_money_fen, parse_quantity
from trading import clearing, staging
from trading import schemas as s
from trading._common import book_error, entry_check
from trading.books import BookTxn, submit
from trading.close import open_book_day
from trading.context import TradingContext
from trading.domain.commands import Cancel, Command, Pick, Place
from trading.domain.model import Code, OrderKind, Side, Status
from trading.domain.money import buy_hold_fen
from trading.domain.sessions import LISTED_SESSIONS
from trading.markets import market_info
from trading.models import Market, Order, OrderRow
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

    async def work(txn: BookTxn) -> s.OrderOut:
        ses = txn.session
        if request_key is not None:
            staged = staging.rows(ses)
            found = None if staged is None else staged.order_with_key(request_key)
            prior = (
                OrderRow(**found)
                if found is not None
                else (await ses.execute(select(Order).where(Order.request_key == request_key))).scalar_one_or_none()
            )
            if prior is not None:
                return await order_out(ses, prior, info.kind)
        row = txn.row
        if row.status != "open":
            raise AppError("market-closed", "Today's trading in this instrument is closed.")
        inst = await txn.instrument(info.instrument_id)
        acc = await trading_account(
            ctx, ses, who, req.account_id, inst, buying=side is Side.BUY, now=now, cache=txn.accounts, day=day
        )
        book = txn.state.book
        early = entry_check(book.config, kind, price_fen, quantity, pick=pick)
        if early is not None:
            raise book_error(early, row, pick=pick)
        ids = await ctx.accounts.ids_for(ses, inst.asset_id)
        if pick:
            assert req.listing_id is not None
            listing = book.order(req.listing_id)
            cost_price = listing.price_fen if listing is not None else None
        else:
            band = book.config.band
            cost_price = price_fen if price_fen is not None else (band.upper_fen if band is not None else None)
        order = OrderRow(
            book_id=book_id,
            market_id=info.market_id,
            instrument_id=info.instrument_id,
            organisation_id=who.organisation_id,
            account_id=acc.id or 0,
            principal_id=who.principal_id,
            side=side.value,
            kind="pick" if pick else kind.value,
            price_fen=cost_price if pick else price_fen,
            quantity=quantity,
            status="new",
            listing_id=req.listing_id,
            request_key=request_key,
            trade_date=day,
            created_at=now,
            updated_at=now,
        )
        # What the hold will be is known before the row is written; its transfer's client id needs the row's id.
        holder: tuple[int, str] | None = None
        if side is Side.SELL:
            holder = (await units_ledger(ctx, ses, acc, inst), acc.type)
            order.hold_count = 1
            order.held_amount = quantity
        elif cost_price is not None:
            holder = (await ctx.accounts.fund(ses, who.organisation_id), clearing.FUND)
            order.hold_price_fen = cost_price
            order.hold_fee_bps = max(row.taker_fee_bps, row.maker_fee_bps)
            order.hold_count = 1
            order.held_amount = buy_hold_fen(cost_price, quantity, row.scale, order.hold_fee_bps)
        # Its id is taken ahead (`BookTxn.order_id`): the hold's client id names it, and the row is written once,
        # whole, after the command has settled.
        oid = order.id = await txn.order_id()
        command: Command = (
            Pick(oid, side, req.listing_id or 0, quantity, owner, now)
            if pick
            else Place(oid, side, kind, price_fen, quantity, owner, now)
        )
        # Hold first: a refusal here leaves the book untouched (the savepoint rolls the row back). A pick of a
        # listing that is not there holds nothing; the book refuses it next.
        if holder is not None:
            if side is Side.SELL:
                await check_sellable(ses, holder[0], acc, inst, quantity, day)
            order.hold_transfer_id = await hold(
                ses,
                prefix=f"ord:{oid}",
                count=1,
                from_account_id=holder[0],
                clearing_id=ids.units_clearing_id if side is Side.SELL else ids.cny_clearing_id,
                asset_id=ids.units_asset_id if side is Side.SELL else ids.cny_asset_id,
                amount=order.held_amount,
                now=now,
                ref=f"order:{oid}",
                funds=side is Side.BUY,
                holder_role=holder[1],
            )
        result = txn.apply(command)
        if not result.ok:
            raise book_error(result.code, row, pick=pick)
        order.journal_seq = txn.journal(command, now)
        fills = await settle(ctx, ses, row, inst, ids, order, result, now, taker_account=acc, taker_holder=holder)
        await insert_order(ses, order)
        count_on_commit(ses, ORDERS_ACCEPTED, side=side.value, kind=order.kind)
        txn.uow.audit(
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

    return await submit(ctx, book_id, work)


async def cancel_order(ctx: TradingContext, who: Identity, order_id: int) -> s.OrderOut:
    async def locate(uow: UnitOfWork) -> tuple[int, str]:
        order = await visible_order(uow.session, who, order_id)
        market = await uow.session.get(Market, order.market_id)
        assert market is not None
        return order.book_id, market.kind

    book_id, kind = await ctx.db.read(locate)
    now = ctx.clock.now()

    async def work(txn: BookTxn) -> s.OrderOut:
        ses = txn.session
        # Its caller was told its id, so it committed; but a command earlier in the batch may have changed it (a
        # maker's fill), and the batch keeps such changes to its end (`trading.staging`).
        staged = staging.rows(ses)
        order: Order
        if staged is not None:
            found = staged.order(order_id) or await staging.order_row(ses, order_id)
            if found is None:
                raise NotFound("order", field="order_id")
            order = OrderRow(**found)
        else:
            order = (
                await ses.execute(select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
            ).scalar_one()
        if order.organisation_id != who.organisation_id:
            raise NotFound("order", field="order_id")
        if order.status == Status.FILLED.value:
            raise book_error(Code.ORDER_FILLED)
        if order.status == Status.CANCELLED.value:
            raise book_error(Code.ORDER_CANCELLED)
        row = txn.row
        command = Cancel(order_id, now, str(who.organisation_id))
        result = txn.apply(command)
        if not result.ok:
            raise book_error(result.code, row)
        order.journal_seq = txn.journal(command, now)
        order.cancelled_quantity += result.cancelled_quantity
        order.status = Status.CANCELLED.value
        order.cancel_reason = "user"
        order.updated_at = now
        await release(ses, order, now)
        if staged is not None:
            staged.put_order(staging.order_values(order))
        else:
            await ses.flush()
        txn.uow.audit(who.actor, "order.cancel", "order", str(order_id), {"released": result.cancelled_quantity})
        return await order_out(ses, order, kind)

    return await submit(ctx, book_id, work)


async def insert_order(ses: AsyncSession, order: Order) -> None:
    """Write a new order's row, id included, as it stands after its command (one prepared INSERT, no ORM flush);
    in a batch that stages its rows, keep it there (`trading.staging`)."""
    values = staging.order_values(order)
    staged = staging.rows(ses)
    if staged is None:
        await staging.INSERT_ORDER.execute(ses, values)
    else:
        staged.put_order(values, new=True)
