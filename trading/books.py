"""A market's order book of one trading day: its row (`trading_book`, which freezes the band, tick, lot, fees and
self-trade rule the day opened with, so that a replay builds the same book) and the exclusive unit of work that
every command on the book runs in, holding the book's lock, so that the sequencer's in-memory book never runs
ahead of the journal in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import UnitOfWork
from core.errors import ServiceUnavailable
from trading._common import STALE_RETRIES, kind_scale
from trading.context import TradingContext
from trading.models import BookDay, Market
from trading.sequencer import StaleBook

T = TypeVar("T")


async def exclusive(ctx: TradingContext, book_id: int, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run `work` as one unit of work holding the book's lock.

    A failure after the book accepted a command leaves the in-memory book ahead of the database, so the
    book is dropped and the next command replays the journal. A stale book (another process appended to
    the journal) is replayed and the command retried.
    """
    seq = ctx.sequencer
    for _ in range(STALE_RETRIES):
        async with seq.lock(book_id):
            try:
                result = await ctx.db.run(work)
            except StaleBook:
                continue
            except BaseException:
                seq.discard_if_dirty(book_id)
                raise
            seq.committed(book_id)
            return result
    raise ServiceUnavailable("Another process is writing this order book; retry shortly.")


async def ensure_book_row(ses: AsyncSession, market_id: int, day: dt.date, now: dt.datetime) -> BookDay:
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
        scale=kind_scale(market.kind),
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
