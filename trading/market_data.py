"""Market data read from the books and the trades: today's depth (best five levels per side, and in listed mode
the listings a taker may pick), a day's book as the matcher holds it (replayed from the journal after a
restart), daily bars per venue with the previous close and the close, and the monthly average price that the
compliance context prices fines at. The pure summaries live in `trading.domain.marketdata`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import InvalidInput
from trading import schemas as s
from trading._common import qty
from trading.context import TradingContext
from trading.domain.bands import price_band, round_half_up_to_tick
from trading.domain.book import BookSnapshot
from trading.domain.marketdata import CLOSE_SETTING_VENUES, TradePrint, Venue, daily_summary
from trading.domain.model import BookMode, Side
from trading.markets import market_info
from trading.models import BookDay, Market, Trade


async def get_order_book(ctx: TradingContext, instrument_id: int) -> s.BookOut:
    info = await market_info(ctx, instrument_id)
    now = ctx.clock.now()
    day = business_date(now)
    book_id = ctx.book_ids.get((info.market_id, day))
    if book_id is None:

        async def find(uow: UnitOfWork) -> int | None:
            found = await uow.session.execute(
                select(BookDay.id).where(BookDay.market_id == info.market_id, BookDay.trade_date == day)
            )
            return found.scalar_one_or_none()

        book_id = await ctx.db.read(find)

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
            state = await ctx.sequencer.load(ses, row)
            next_seq = state.next_seq
            depth = state.book.depth(5)
            bids = [level(lv.price_fen, lv.quantity, lv.order_count, info.kind) for lv in depth.bids]
            asks = [level(lv.price_fen, lv.quantity, lv.order_count, info.kind) for lv in depth.asks]
            if row.mode == BookMode.LISTED.value:
                pickable = {(Side.BUY, lv.price_fen) for lv in depth.bids} | {
                    (Side.SELL, lv.price_fen) for lv in depth.asks
                }
                listings = [
                    s.ListingOut(
                        id=o.order_id,
                        side=o.side.value,
                        price=figures.yuan_plain(o.price_fen),
                        price_fen=o.price_fen,
                        quantity=qty(o.quantity, info.kind),
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
            prev_close=figures.yuan_plain(prev_close),
            band_lower=figures.yuan_plain(band.lower_fen),
            band_upper=figures.yuan_plain(band.upper_fen),
            bids=bids,
            asks=asks,
            listings=listings,
            journal_seq=next_seq - 1,
        )

    if book_id is None:
        return await ctx.db.read(work)
    async with ctx.sequencer.lock(book_id):
        return await ctx.db.read(work)


def level(price_fen: int, quantity: int, count: int, kind: str) -> s.LevelOut:
    return s.LevelOut(
        price=figures.yuan_plain(price_fen),
        price_fen=price_fen,
        quantity=qty(quantity, kind),
        quantity_base=quantity,
        order_count=count,
    )


async def book_snapshot(ctx: TradingContext, instrument_id: int, day: dt.date) -> BookSnapshot | None:
    """The book of `day` as the matcher holds it (replayed from the journal when not in memory)."""
    info = await market_info(ctx, instrument_id)

    async def find(uow: UnitOfWork) -> BookDay | None:
        return (
            await uow.session.execute(
                select(BookDay).where(BookDay.market_id == info.market_id, BookDay.trade_date == day)
            )
        ).scalar_one_or_none()

    row = await ctx.db.read(find)
    if row is None:
        return None

    async def work(uow: UnitOfWork) -> BookSnapshot:
        return (await ctx.sequencer.load(uow.session, row)).book.snapshot()

    async with ctx.sequencer.lock(row.id or 0):
        return await ctx.db.read(work)


async def get_daily_bars(
    ctx: TradingContext, instrument_id: int, *, date_from: dt.date, date_to: dt.date
) -> list[s.DayOut]:
    """One entry per day that has a book or trades: bars per venue, previous close and close."""
    if date_to < date_from:
        raise InvalidInput("date_to", "The end date must not be before the start date.")
    if (date_to - date_from).days > 366:
        raise InvalidInput("date_to", "Ask for at most 366 days at a time.")
    info = await market_info(ctx, instrument_id)

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
                    prev_close=figures.yuan_plain(prev),
                    prev_close_fen=prev,
                    close=figures.yuan_plain(close),
                    close_fen=close,
                    closed=closed,
                    bars=[
                        s.BarOut(
                            venue=b.venue.value,
                            open=figures.yuan_plain(b.open_fen),
                            high=figures.yuan_plain(b.high_fen),
                            low=figures.yuan_plain(b.low_fen),
                            last=figures.yuan_plain(b.last_fen),
                            open_fen=b.open_fen,
                            high_fen=b.high_fen,
                            low_fen=b.low_fen,
                            last_fen=b.last_fen,
                            volume=qty(b.volume, info.kind),
                            volume_base=b.volume,
                            turnover=figures.yuan_plain(b.turnover_fen),
                            turnover_fen=b.turnover_fen,
                            trade_count=b.trade_count,
                        )
                        for b in summary.bars
                    ],
                )
            )
        return out

    return await ctx.db.read(work)


async def monthly_average_price_fen(ctx: TradingContext, *, kind: str, year: int, month: int) -> int | None:
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

    return await ctx.db.read(work)
