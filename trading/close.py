"""The trading day: a market's book of a day is opened on first use, with the previous close as its band
reference, after any earlier day left open (the scheduler was down) has been closed; the daily close expires the
open orders and block proposals of every market (their holds released) and sets the close, the volume-weighted
average of the day's listed and continuous trades (else the previous close), which is the next day's reference.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from core import figures
from core.clock import SHANGHAI, business_date
from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput
from core.identity import Identity
from core.text import clean_text
from trading import schemas as s
from trading._common import SYSTEM_ACTOR
from trading.block_trades import release_block
from trading.books import ensure_book_row, exclusive
from trading.context import MarketInfo, TradingContext
from trading.domain.commands import Cancel
from trading.domain.marketdata import TradePrint, Venue, daily_summary
from trading.domain.model import Status
from trading.domain.sessions import LISTED_SESSIONS
from trading.markets import market_info
from trading.models import BlockTrade, BookDay, Market, Order, Trade
from trading.settlement import release


async def open_book_day(ctx: TradingContext, info: MarketInfo, day: dt.date, now: dt.datetime) -> int:
    """The id of the market's book for `day`, opened (with yesterday's close as its band) on first use."""
    key = (info.market_id, day)
    book_id = ctx.book_ids.get(key)
    if book_id is not None:
        return book_id
    # A day that was never closed (the scheduler was down) is closed first: its close is today's band.
    await close_stale_days(ctx, info, day, now)

    async def work(uow: UnitOfWork) -> int:
        row = await ensure_book_row(uow.session, info.market_id, day, now)
        return row.id or 0

    book_id = await ctx.db.run(work)
    ctx.book_ids[key] = book_id
    return book_id


async def close_stale_days(ctx: TradingContext, info: MarketInfo, day: dt.date, now: dt.datetime) -> None:
    async def work(uow: UnitOfWork) -> list[dt.date]:
        rows = await uow.session.execute(
            select(BookDay.trade_date)
            .where(BookDay.market_id == info.market_id, BookDay.status == "open", BookDay.trade_date < day)
            .order_by(BookDay.trade_date)  # type: ignore[arg-type]
        )
        return list(rows.scalars())

    for stale in await ctx.db.read(work):
        await close_market_day(ctx, info, stale, now, SYSTEM_ACTOR)


async def close_trading_day(
    ctx: TradingContext,
    day: dt.date | None = None,
    who: Identity | None = None,
    *,
    early_close: bool = False,
    reason: str = "",
) -> s.CloseOut:
    """Close `day` (default today) in every market: expire open orders and block proposals (holds released),
    set the close (VWAP of the day's listed and continuous trades, else the previous close), which is the
    next day's band reference. Idempotent per market and day; earlier unclosed days are closed first.

    Before today's last session has ended, a person must say so: `early_close` with a reason, kept in the audit
    entry of every market it closes; without them the request is refused and nothing closes."""
    now = ctx.clock.now()
    today = business_date(now)
    day = day or today
    if day > today:
        raise InvalidInput("trade_date", "A trading day can be closed on or after that day, not before.")
    actor = who.actor if who is not None else SYSTEM_ACTOR
    early = day == today and _sessions_left(ctx, now)
    early_reason: str | None = None
    if early and who is not None:
        if not early_close:
            raise Conflict(
                "invalid-state",
                "Today's sessions have not ended (they end at 15:00 Asia/Shanghai). To close the day early, send "
                "`early_close: true` with the `reason`; it is audited.",
                field="early_close",
            )
        early_reason = clean_text(reason, "reason", max_len=500, required=True)

    async def markets(uow: UnitOfWork) -> list[int]:
        return list((await uow.session.execute(select(Market.instrument_id).order_by(Market.id))).scalars())  # type: ignore[arg-type]

    out: list[s.ClosedMarketOut] = []
    for instrument_id in await ctx.db.read(markets):
        info = await market_info(ctx, instrument_id)
        await close_stale_days(ctx, info, day, now)
        closed = await close_market_day(ctx, info, day, now, actor, early_reason=early_reason)
        if closed is not None:
            out.append(closed)
    return s.CloseOut(trade_date=day, markets=out)


def _sessions_left(ctx: TradingContext, now: dt.datetime) -> bool:
    """True while today is a trading day and its last session (listed and block trades end alike) is not over."""
    today = business_date(now)
    if today.weekday() >= 5 or not ctx.is_working_day(today):
        return False
    return now.astimezone(SHANGHAI).time() < LISTED_SESSIONS.windows[-1].end


async def close_market_day(
    ctx: TradingContext,
    info: MarketInfo,
    day: dt.date,
    now: dt.datetime,
    actor: str,
    *,
    early_reason: str | None = None,
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

    book_id, traded = await ctx.db.read(find)
    if book_id is None and not traded and not ctx.is_working_day(day):
        return None

    async def work(uow: UnitOfWork) -> s.ClosedMarketOut:
        ses = uow.session
        row = await ensure_book_row(ses, info.market_id, day, now)
        market = await ses.get(Market, info.market_id)
        assert market is not None
        if row.status == "closed":
            return s.ClosedMarketOut(
                instrument_id=info.instrument_id,
                close=figures.yuan_plain(row.close_fen or row.prev_close_fen),
                close_fen=row.close_fen or row.prev_close_fen,
                expired_orders=0,
                expired_block_trades=0,
                already_closed=True,
            )
        expired = 0
        if book_id is not None:
            state = await ctx.sequencer.load(ses, row)
            open_ids = [o.order_id for o in state.book.open_orders()]
            if open_ids:
                orders = {
                    o.id: o
                    for o in (await ses.execute(select(Order).where(Order.id.in_(open_ids)))).scalars()  # type: ignore[union-attr]
                }
                for oid in sorted(open_ids):
                    command = Cancel(oid, now, None)
                    result = ctx.sequencer.apply(state, command)
                    assert result.ok, result
                    order = orders[oid]
                    order.journal_seq = await ctx.sequencer.append(ses, state, command, now)
                    order.cancelled_quantity += result.cancelled_quantity
                    order.status = Status.CANCELLED.value
                    order.cancel_reason = "expired"
                    order.updated_at = now
                    await release(ses, order, now)
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
            await release_block(ses, bt, now, "expired")
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
            {
                "trade_date": day.isoformat(),
                "close_fen": summary.close_fen,
                "expired_orders": expired,
                **({"early_close_reason": early_reason} if early_reason is not None else {}),
            },
        )
        return s.ClosedMarketOut(
            instrument_id=info.instrument_id,
            close=figures.yuan_plain(summary.close_fen),
            close_fen=summary.close_fen,
            expired_orders=expired,
            expired_block_trades=len(blocks),
            already_closed=False,
        )

    if book_id is None:
        result = await ctx.db.run(work)
    else:
        result = await exclusive(ctx, book_id, work)
        ctx.sequencer.forget(book_id)
    ctx.book_ids.pop((info.market_id, day), None)
    return result
