"""Reading orders and trades: an order is visible to its own organisation and to the roles that read everything
(anyone else gets the same 404 as for a missing order), with its fills and what it still holds; the trades feed
of an instrument is public to the market's readers, newest first, paged by id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures
from core.db import UnitOfWork
from core.errors import NotFound
from core.identity import Identity
from trading import schemas as s
from trading import staging
from trading._common import maybe_yuan, qty
from trading.context import TradingContext
from trading.domain.model import Side
from trading.markets import market_info
from trading.models import Market, Order, Trade, TradeRow


async def visible_order(ses: AsyncSession, who: Identity, order_id: int) -> Order:
    order = await ses.get(Order, order_id)
    if order is None or not (who.reads_all() or order.organisation_id == who.organisation_id):
        raise NotFound("order", field="order_id")
    return order


async def get_order(ctx: TradingContext, who: Identity, order_id: int) -> s.OrderOut:
    async def work(uow: UnitOfWork) -> s.OrderOut:
        order = await visible_order(uow.session, who, order_id)
        market = await uow.session.get(Market, order.market_id)
        assert market is not None
        return await order_out(uow.session, order, market.kind)

    return await ctx.db.read(work)


async def list_orders(
    ctx: TradingContext,
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
        by_order = await fills(ses, [o.id or 0 for o in page])
        items = [order_view(o, kinds[o.market_id], by_order.get(o.id or 0, [])) for o in page]
        return s.OrderPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

    return await ctx.db.read(work)


async def fills(ses: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[Trade]]:
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
    staged = staging.rows(ses)
    for row in [] if staged is None else staged.trades:  # a batch's trades, not written yet (`trading.staging`)
        for oid in (row["buy_order_id"], row["sell_order_id"]):
            if oid in order_ids:
                out.setdefault(oid, []).append(TradeRow(**row))
    return out


async def order_out(ses: AsyncSession, order: Order, kind: str) -> s.OrderOut:
    by_order = await fills(ses, [order.id or 0])
    return order_view(order, kind, by_order.get(order.id or 0, []))


def order_view(o: Order, kind: str, fills: Sequence[Trade]) -> s.OrderOut:
    buys = o.side == Side.BUY.value
    return s.OrderOut(
        id=o.id or 0,
        instrument_id=o.instrument_id,
        account_id=o.account_id,
        side=o.side,
        kind=o.kind,
        price=maybe_yuan(o.price_fen),
        price_fen=o.price_fen,
        quantity=qty(o.quantity, kind),
        quantity_base=o.quantity,
        filled=qty(o.filled_quantity, kind),
        filled_base=o.filled_quantity,
        remaining_base=o.quantity - o.filled_quantity - o.cancelled_quantity,
        cancelled_base=o.cancelled_quantity,
        status=o.status,
        cancel_reason=o.cancel_reason,
        listing_id=o.listing_id,
        held=figures.yuan_plain(o.held_amount) if buys else qty(o.held_amount, kind),
        held_base=o.held_amount,
        trade_date=o.trade_date,
        journal_seq=o.journal_seq,
        fills=[
            s.FillOut(
                trade_id=t.id or 0,
                price=figures.yuan_plain(t.price_fen),
                price_fen=t.price_fen,
                quantity=qty(t.quantity, kind),
                quantity_base=t.quantity,
                fee=figures.yuan_plain(t.buyer_fee_fen if buys else t.seller_fee_fen),
                fee_fen=t.buyer_fee_fen if buys else t.seller_fee_fen,
                at=t.at,
            )
            for t in fills
            if (t.buy_order_id if buys else t.sell_order_id) == o.id
        ],
        created_at=o.created_at,
        updated_at=o.updated_at,
    )


async def list_trades(
    ctx: TradingContext,
    instrument_id: int,
    *,
    trade_date: dt.date | None,
    venue: str | None,
    limit: int,
    before_id: int | None,
) -> s.TradePage:
    info = await market_info(ctx, instrument_id)

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
                price=figures.yuan_plain(t.price_fen),
                price_fen=t.price_fen,
                quantity=qty(t.quantity, info.kind),
                quantity_base=t.quantity,
                taker_side=t.taker_side,
                at=t.at,
            )
            for t in rows[:limit]
        ]
        return s.TradePage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

    return await ctx.db.read(work)
